"""The sweep report on a hand-made sweep folder whose numbers are known: statistics checked
against scipy and statsmodels, the tables at a glance, the training length and tuned rates
stated, W&B logged offline. (Its plots: test_report_plots; its jobs: test_report_jobs.)"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats
from support import read_wandb_runs
from support.report_sweeps import TOP1, job_config, percent, write_job, write_report_sweep

from downsample_study.layout import EPOCHS_FILE, PLOTS
from downsample_study.report.build import write_report
from downsample_study.report.cli import main
from downsample_study.report.variants import FRACTION_DECIMALS
from downsample_study.results import EPOCH_COLUMNS


@pytest.fixture
def sweep(tmp_path):
    return write_report_sweep(tmp_path / "sweep")


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_variant_statistics_match_scipy(sweep):
    write_report(sweep, use_wandb=False, draw_plots=False)
    rows = {(r["dataset"], r["downsample"]): r for r in read_csv(sweep / "results.csv")}
    assert set(rows) == set(TOP1)  # one row per variant; seeds and operator options pooled
    for key, by_seed in TOP1.items():
        row, x = rows[key], percent(by_seed.values())
        assert int(row["n"]) == len(x)
        assert float(row["test_top1_mean"]) == pytest.approx(x.mean())
        assert float(row["test_top1_std"]) == pytest.approx(x.std(ddof=1))
        low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert float(row["test_top1_ci_low"]) == pytest.approx(low)
        assert float(row["test_top1_ci_high"]) == pytest.approx(high)
        assert int(row["params"]) == (64_356 if key[1] == "stride2" else 61_706)
        assert float(row["shift_circular_consistency_mean"]) == pytest.approx(78.0)
    assert rows["mnist", "stride2"]["failed"] == "1"


COMPARED = [("mnist", "stride2", "paired"), ("fashion_mnist", "stride2", "paired"),
            ("mnist", "avgpool", "welch")]  # the report's family of comparisons


def _scipy_test(dataset: str, op: str, test: str):
    a, b = percent(TOP1[dataset, op].values()), percent(TOP1[dataset, "maxpool"].values())
    if test == "paired":
        return a, b, stats.ttest_rel(a, b)
    return a, b, stats.ttest_ind(a, b, equal_var=False)


def _seeds_to_resolve(a, b, test: str, alpha: float) -> int:
    from statsmodels.stats.power import TTestIndPower, TTestPower

    diff = abs(a.mean() - b.mean())
    if test == "paired":
        sd, per_side, power = (a - b).std(ddof=1), 1, TTestPower()
    else:
        sd = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1))
                     / (len(a) + len(b) - 2))
        per_side, power = 2, TTestIndPower()
    seeds = [power.solve_power(effect_size=diff / sd, alpha=alpha, power=0.8)]
    if diff < 0.2:
        seeds.append(next(k for k in range(2, 1000)
                          if stats.t.ppf(1 - alpha, k - 1) * sd * np.sqrt(per_side / k)
                          < 0.2 - diff))
    return max(max(len(a), len(b)) + 1, int(np.ceil(min(seeds))))


@pytest.mark.parametrize(("dataset", "op", "test"), COMPARED)
def test_difference_to_maxpool_matches_scipy_and_statsmodels_and_is_stated_in_words(
    sweep, dataset, op, test
):
    """The t-test (scipy), the equivalence test within ±0.2 pp (statsmodels), each
    Holm-adjusted over the report's three comparisons, the effect size and the verdict."""
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    write_report(sweep, use_wandb=False, draw_plots=False)
    a, b, result = _scipy_test(dataset, op, test)
    ci = result.confidence_interval(0.95)
    diff = a.mean() - b.mean()
    holm = dict(zip(COMPARED, multipletests([_scipy_test(*c)[2].pvalue for c in COMPARED],
                                            method="holm")[1], strict=True))
    p_holm = holm[dataset, op, test]

    def tost_of(dataset, op, test):
        a, b, _ = _scipy_test(dataset, op, test)
        if test == "paired":
            return ttost_paired(a, b, -0.2, 0.2)[0]
        return ttost_ind(a, b, -0.2, 0.2, usevar="unequal")[0]

    tost = tost_of(dataset, op, test)
    tost_holm = dict(zip(COMPARED, multipletests([tost_of(*c) for c in COMPARED],
                                                 method="holm")[1], strict=True))
    if test == "paired":
        effect = (a - b).mean() / (a - b).std(ddof=1)
    else:
        pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1))
                         / (len(a) + len(b) - 2))
        effect = diff / pooled * (1 - 3 / (4 * (len(a) + len(b)) - 9))

    [row] = [r for r in read_csv(sweep / "comparisons.csv")
             if r["dataset"] == dataset and r["variant"].endswith(op)]
    assert row["test"] == test and row["difference"] == f"{op} − maxpool"
    assert float(row["diff_top1_pp"]) == pytest.approx(diff)
    assert float(row["p_value"]) == pytest.approx(result.pvalue)
    assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((ci.low, ci.high))
    assert float(row["p_holm"]) == pytest.approx(p_holm)
    assert float(row["p_equivalent"]) == pytest.approx(tost)
    assert float(row["p_equivalent_holm"]) == pytest.approx(tost_holm[dataset, op, test])
    assert float(row["effect_size"]) == pytest.approx(effect)
    verdict = ("better" if diff > 0 else "worse") if p_holm < 0.05 else (
        "equivalent within ±0.2 pp" if tost_holm[dataset, op, test] < 0.05 else "inconclusive")
    assert row["verdict"] == verdict
    assert (row["seeds_needed"] != "") == (verdict == "inconclusive")
    if verdict == "inconclusive":  # 80 % power, or the interval within ±0.2, at α / 3
        assert int(row["seeds_needed"]) == _seeds_to_resolve(a, b, test, alpha=0.05 / 3)

    def pp(v):
        return f"{v:+.2f}".replace("-", "−")

    n = "3" if test == "paired" else "2 vs 3"
    expected = (f"{op} − maxpool = {pp(diff)} pp [{pp(ci.low)}, {pp(ci.high)}], "
                f"p = {result.pvalue:.2g}, Holm p = {p_holm:.2g}, ")
    text = (sweep / "report.md").read_text()
    assert expected in text and f"**{verdict}** at n = {n}" in text
    assert "over this report's 3 tested comparisons, the family" in text


def test_the_comparisons_with_a_baseline_are_also_one_table_at_a_glance(sweep):
    """A row per operator, a column per dataset, each cell the difference and its verdict as
    the sentences give them; a pair the sweep lacks is a dash."""
    write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    section = text.split("## Differences in test top-1 to downsample=maxpool")[1]
    header, _, *rows = section.split("\n\n")[1].splitlines()
    columns = header.strip("| ").split(" | ")
    assert columns[0] == "downsample" and sorted(columns[1:]) == ["fashion_mnist", "mnist"]
    cells = {row.split(" | ")[0][2:]: row.strip("| ").split(" | ")[1:] for row in rows}
    assert set(cells) == {"stride2", "avgpool"}
    assert cells["avgpool"][columns.index("fashion_mnist") - 1] == "—"
    for row in read_csv(sweep / "comparisons.csv"):
        op, dataset = row["variant"].split(" · ")[-1], row["dataset"]
        cell = cells[op][columns.index(dataset) - 1]
        diff = f"{float(row['diff_top1_pp']):+.2f}".replace("-", "−")
        marks = {"inconclusive": "?", "better": "better", "worse": "worse"}
        assert cell.strip("*").startswith(diff) and cell.strip("*").endswith(
            marks.get(row["verdict"], "≈")), (cell, row["verdict"])


@pytest.mark.parametrize(("section", "path"), [
    ("Test top-1 %, mean ± standard deviation", ("test", "acc_top1")),
    ("Consistency (zero fill), mean ± standard deviation",
     ("evaluations", "shift", "summary", "consistency_zero")),
])
def test_each_variants_mean_is_also_one_table_at_a_glance(sweep, section, path):
    """A row per operator (best first, the baseline marked), a column per dataset, each cell
    the mean ± standard deviation over seeds; a pair the sweep lacks is a dash."""
    write_report(sweep, use_wandb=False, draw_plots=False)
    table = (sweep / "report.md").read_text().split(section)[1].split("\n\n")[1]
    header, _, *rows = table.splitlines()
    columns = header.strip("| ").split(" | ")
    assert columns == ["downsample", "fashion_mnist", "mnist"]
    cells = {row.strip("| ").split(" | ")[0]: row.strip("| ").split(" | ")[1:] for row in rows}
    if path[0] == "test":  # by mean, best first (against each dataset's mean)
        assert list(cells) == ["stride2", "maxpool (baseline)", "avgpool"]
    assert cells["avgpool"][0] == "—"
    for (dataset, op), by_seed in TOP1.items():
        values = []
        for seed in by_seed:
            results = json.loads((sweep / f"dataset={dataset},downsample={op},seed={seed}"
                                  / "results.json").read_text())
            for step in path:
                results = results[step]
            values.append(round(100 * results, FRACTION_DECIMALS))  # a count, as a percentage
        cell = cells[op + " (baseline)" * (op == "maxpool")][columns.index(dataset) - 1]
        assert cell == f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def test_a_glance_tables_columns_go_by_dataset_then_by_value_whichever_variant_is_best(
        tmp_path):
    sweep = tmp_path / "sweep"
    for dataset, level in (("mnist", 0.98), ("fashion_mnist", 0.89)):
        for i, op in enumerate(("maxpool", "avgpool", "stride2", "stride2_fold")):
            for batch_norm in (False, True):
                for seed in (0, 1):  # BatchNorm on is the better on MNIST, off on FashionMNIST
                    better = batch_norm == (dataset == "mnist")
                    write_job(sweep, dataset, op, seed, level + 0.002 * (i + seed + better),
                              batch_norm=batch_norm)
    write_report(sweep, use_wandb=False, draw_plots=False)
    section = (sweep / "report.md").read_text().split("to downsample=maxpool")[1]
    header = section.split("\n\n")[1].splitlines()[0]
    assert header.strip("| ").split(" | ")[1:] == [
        f"{dataset} · batch_norm={bn}" for dataset in ("fashion_mnist", "mnist")
        for bn in ("false", "true")]


def test_the_training_length_says_what_the_last_quarter_of_the_epochs_added(tmp_path):
    """8 epochs: the rise from epoch 6 to 8 (the last quarter), mean over seeds, its largest
    and its median over variants; where the selected checkpoints fell."""
    sweep = tmp_path / "sweep"
    rises = {"maxpool": (0.004, 0.006), "avgpool": (0.0, 0.002), "stride2": (0.001, 0.001)}
    for op, by_seed in rises.items():
        for seed, rise in enumerate(by_seed):
            folder = write_job(sweep, "mnist", op, seed, 0.98)
            results = json.loads((folder / "results.json").read_text())
            results.update(schema_version=4, epochs=8, best_epoch=7 + seed)  # counted from 1
            (folder / "results.json").write_text(json.dumps(results))
            with (folder / EPOCHS_FILE).open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(EPOCH_COLUMNS)
                for epoch in range(1, 9):
                    val = 0.97 + (rise * (epoch - 6) / 2 if epoch > 6 else 0.0)
                    writer.writerow([epoch, 10 * epoch, float(epoch), 0.1, val, 0.99, 0.1])
    write_report(sweep, use_wandb=False, draw_plots=False)
    section = (sweep / "report.md").read_text().split("## Training length")[1]
    line = next(x for x in section.splitlines() if x.startswith("- **mnist**"))
    assert "8 epochs" in line and "checkpoints' epoch 7.5 (mean over seeds" in line
    assert ("from epoch 6 to 8 validation top-1 changed by +0.10 pp in the median variant "
            "and by at most +0.50 pp (mean over seeds; lenet5 · maxpool") in line


@pytest.mark.parametrize(("best", "edge"), [(0.01, "highest"), (0.0001, "lowest"), (0.001, "")])
def test_a_tuned_rate_at_the_edge_of_the_rates_tried_is_flagged(sweep, best, edge):
    from omegaconf import OmegaConf

    rates = {0.0001: 0.95, 0.001: 0.96, 0.01: 0.94}
    rates[best] = 0.99
    folder = sweep / "tuning" / "dataset=mnist,downsample=stride2"
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"lr": best, "value": 0.99, "trials": [
        {"lr": lr, "value": value} for lr, value in rates.items()]}), folder / "best.yaml")
    write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    if edge:
        assert f"**{best:.3g}** ({edge} tried)" in text
    else:
        assert "tried)" not in text
    assert ("1 of 1 variants' best rate is the highest or lowest" in text) == bool(edge)


@pytest.mark.parametrize(("stride2", "verdict"), [
    # as many images fewer right on both seeds: float32 made that 0.09 pp ± 1e-6
    ((9802, 9813), "no test (the difference is the same for every seed)"),
    ((9802, 9815), "paired t-test over seeds 0, 1"),
])
def test_accuracies_are_compared_as_the_counts_they_are(stride2, verdict, tmp_path):
    sweep = tmp_path / "sweep"
    for seed, (maxpool, other) in enumerate(zip((9811, 9822), stride2, strict=True)):
        write_job(sweep, "mnist", "maxpool", seed, float(np.float32(maxpool / 10_000)))
        write_job(sweep, "mnist", "stride2", seed, float(np.float32(other / 10_000)))
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    [comparison] = report.comparisons
    assert comparison.diff == pytest.approx(-(9811 + 9822 - sum(stride2)) / 200)
    assert verdict in (sweep / "report.md").read_text()


@pytest.mark.parametrize(("seeds", "header"), [
    (1, "1 job: 1 completed, 0 failed, 0 not run; 1 variant."),
    (2, "2 jobs: 2 completed, 0 failed, 0 not run; 1 variant."),
])
def test_the_header_counts_in_words(seeds, header, tmp_path):
    for seed in range(seeds):
        write_job(tmp_path / "sweep", "mnist", "maxpool", seed, 0.98)
    write_report(tmp_path / "sweep", use_wandb=False, draw_plots=False)
    assert header in (tmp_path / "sweep" / "report.md").read_text()


def test_a_variant_whose_every_seed_failed_is_named_not_dropped(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in range(3):
        write_job(sweep, "mnist", "maxpool", seed, 0.98)
        failed = sweep / f"dataset=mnist,downsample=stride2,seed={seed}"
        failed.mkdir()
        (failed / "results.json").write_text(json.dumps({
            "status": "failed", "config": job_config("mnist", "stride2", seed),
            "error": f"training loss is nan at epoch 1, step {seed}: the run diverged"}))
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    assert [v.label for v in report.variants] == ["lenet5 · maxpool"]
    assert "No seed completed, so in no other table and no plot (why: Jobs without results, " \
           "below): mnist · lenet5 · stride2, 3 seeds failed." in (sweep / "report.md").read_text()


def test_intervals_of_accuracies_stay_within_0_and_100_percent():
    from downsample_study.report.statistics import Stat

    stat = Stat.of([99.9, 98.0], (0.0, 100.0))  # at n = 2 the t interval runs past 100
    assert stat.high == 100.0 and stat.low < 98.0
    assert Stat.of([99.9, 98.0]).high > 100.0  # unbounded quantities keep theirs


def test_variants_are_listed_by_dataset_best_first_with_the_baseline_marked(sweep):
    report = write_report(sweep, use_wandb=False)
    means = [(v.flat["dataset.name"], np.mean(list(v.values("test", "acc_top1").values())))
             for v in report.variants]
    for dataset in ("fashion_mnist", "mnist"):
        ordered = [m for d, m in means if d == dataset]
        assert ordered == sorted(ordered, reverse=True)
    table = (sweep / "report.md").read_text().split("Every variant:")[1].split("##")[0]
    marked = [line for line in table.splitlines() if "(baseline)" in line]
    assert len(marked) == 2 and all("maxpool (baseline)" in line for line in marked)
    plot = (sweep / PLOTS["accuracy"]).with_suffix(".svg").read_text()
    assert plot.count("maxpool (baseline)") == 2 and "stride2 (baseline)" not in plot


@pytest.mark.parametrize("trackers", [
    None,  # results.json before version 5: its config's logger node says where it logged
    [{"name": "csv"}, {"name": "wandb", "mode": "offline", "project": "downsample_study",
                       "entity": None, "group": None}],
    [{"name": "csv"}],  # no W&B run: no report run
], ids=["from-config", "one-of-several", "csv-only"])
def test_report_is_logged_to_the_sweeps_wandb_group_offline(tmp_path, trackers):
    sweep = tmp_path / "sweep"
    for (dataset, op), by_seed in TOP1.items():
        for seed, top1 in by_seed.items():
            write_job(sweep, dataset, op, seed, top1, logger="wandb", trackers=trackers,
                      schema=8 if trackers else 4)
    assert main([str(sweep)]) == 0
    if trackers == [{"name": "csv"}]:
        assert not (sweep / "wandb").exists()
        return
    [run] = read_wandb_runs(sweep / "wandb")
    assert run.job_type == "report" and run.group == "multirun_test"
    logged = {k for row in run.history for k in row}
    assert {"report/variants", "report/comparisons", "report/accuracy"} <= logged
    assert ("report", "report-multirun_test") in run.artifacts  # the report's files
    assert run.exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [(["nowhere"], "no such folder"), (["pyproject.toml"], "a file, not a folder"),
     (["."], "no jobs found"),
     ([".", "--baseline", "maxpool"], "expected KEY=VALUE"),
     ([".", "--margin", "0"], "--margin: the equivalence margin must be > 0 pp, got 0")],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(("baseline", "message"), [
    ("downsample=maxpol",
     "baseline downsample=maxpol: no variant has it; its values here: avgpool, maxpool, stride2"),
    ("dataset.val_sise=10", "baseline dataset.val_sise: no variant's config has this key"),
])
def test_a_baseline_asked_for_that_no_variant_has_is_an_error_naming_the_values(
        baseline, message, sweep, capsys):
    assert main([str(sweep), "--baseline", baseline, "--no-wandb", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert f"error: {message}" in err and "Traceback" not in err
    assert not (sweep / "report.md").exists()


def test_a_configured_baseline_the_sweep_did_not_train_is_said_so_in_its_section(sweep):
    path = next(sweep.glob("dataset=mnist,downsample=maxpool,seed=0/results.json"))
    results = json.loads(path.read_text())
    results["config"]["report"] = {"baselines": [{"downsample": "blurpool"}]}
    path.write_text(json.dumps(results))
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    assert report.comparisons == []
    assert "## Differences in test top-1 to downsample=blurpool\n\nNo variant in this sweep " \
           "has a baseline of this kind (downsample=blurpool: no variant has it; its values " \
           "here: avgpool, maxpool, stride2)." in (sweep / "report.md").read_text()


def test_a_baseline_can_fix_several_keys(sweep):
    report = write_report(sweep, [{"dataset": "fashion_mnist", "downsample": "maxpool"}],
                          use_wandb=False, draw_plots=False)
    assert {c.what for c in report.comparisons} == {
        "mnist+maxpool − fashion_mnist+maxpool",
        "mnist+stride2 − fashion_mnist+maxpool",
        "mnist+avgpool − fashion_mnist+maxpool",
        "fashion_mnist+stride2 − fashion_mnist+maxpool",
    }


def test_a_variant_that_is_the_baseline_of_two_comparisons_is_marked_in_both_columns(sweep):
    write_report(sweep, [{"downsample": "maxpool"}, {"dataset": "fashion_mnist"}],
                 use_wandb=False, draw_plots=False)
    table = (sweep / "report.md").read_text().split("Every variant:")[1].split("##")[0]
    [row] = [line for line in table.splitlines()
             if "maxpool" in line and "fashion_mnist" in line]
    assert "fashion_mnist (baseline)" in row and "maxpool (baseline)" in row


def test_the_tables_are_also_latex_with_booktabs_rules_and_the_same_numbers(sweep):
    report = write_report(sweep, use_wandb=False, draw_plots=False)
    tex = (sweep / "tables.tex").read_text()
    assert tex.count("\\toprule") == tex.count("\\bottomrule") == 2  # variants, comparisons
    variants = tex.split("\\label{tab:variants}")[1].split("\\bottomrule")[0]
    comparisons = tex.split("\\label{tab:comparisons}")[1].split("\\bottomrule")[0]
    body = variants.split("\\midrule")[1].strip().splitlines()
    assert len(body) == len(report.variants)
    for v, line in zip(report.variants, body, strict=True):
        top1 = v.stat("test", "acc_top1")
        assert f"${top1.mean:.2f} \\pm {top1.std:.2f}$" in line  # report.md's numbers
    assert len(comparisons.split("\\midrule")[1].strip().splitlines()) == len(
        report.comparisons)
    assert "fashion\\_mnist &" in tex and "batch\\_norm &" in tex and "fashion_mnist" not in tex
    # as report.md states it: avgpool − maxpool = −0.20 pp [−0.51, +0.11], Holm p = 0.2
    assert "lenet5 · avgpool & lenet5 · maxpool & $-0.20$ $[-0.51, +0.11]$ & $0.2$ & " \
           "inconclusive" in comparisons


def test_a_report_without_comparisons_has_one_latex_table(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, top1 in enumerate((0.9, 0.91, 0.92)):
        write_job(sweep, "mnist", "stride2", seed, top1)
    write_report(sweep, use_wandb=False, draw_plots=False)
    tex = (sweep / "tables.tex").read_text()
    assert "tab:variants" in tex and "tab:comparisons" not in tex


@pytest.mark.parametrize(("regime", "padding_mode", "cells", "sentences"), [
    ({"stride": 4, "invariant": True}, "circular", {"in"}, ["All variants are in it."]),
    ({"stride": 4, "invariant": False}, "circular", {"out"},
     ["No variant is in it.", "The aps rows are outside it"]),
    # files of schema < 7 recorded no regime: zero padding is outside it, circular not known
    (None, "zeros", {"out"}, ["No variant is in it.", "The aps rows are outside it"]),
    (None, "circular", {"—"}, ["0 of 2 variants are in it.", "For 2 variants it is not known"]),
])
def test_the_shift_section_says_which_variants_are_in_apss_regime(tmp_path, regime, padding_mode,
                                                                   cells, sentences):
    sweep = tmp_path / "sweep"
    for op in ("maxpool", "aps"):
        for seed in (0, 1):
            path = write_job(sweep, "mnist", op, seed, 0.98 + seed / 100,
                             schema=8 if regime else 6) / "results.json"
            results = json.loads(path.read_text())
            results["config"]["model"] = {"name": "lenet_gap", "padding_mode": padding_mode}
            if regime is not None:
                results["evaluations"]["shift"]["details"]["regime"] = regime
            path.write_text(json.dumps(results))
    write_report(sweep, use_wandb=False, draw_plots=False)
    section = (sweep / "report.md").read_text().split("## Shift robustness")[1]
    table = [line.strip("| ").split(" | ") for line in section.splitlines()
             if line.startswith("| mnist")]
    assert len(table) == 2 and {row[-1] for row in table} == cells
    for sentence in sentences:
        assert sentence in section
    assert ("The aps rows" in section) == (cells == {"out"})
    regimes = {row["aps_regime"] for row in read_csv(sweep / "results.csv")}
    assert regimes == {{"in": "True", "out": "False", "—": ""}[cell] for cell in cells}


def test_each_variant_names_its_operators_family(sweep):
    write_report(sweep, use_wandb=False, draw_plots=False)
    families = {r["downsample"]: r["family"] for r in read_csv(sweep / "results.csv")}
    assert families == {"maxpool": "importance", "stride2": "strided",
                        "avgpool": "fixed low-pass"}
    table = (sweep / "report.md").read_text().split("Every variant:")[1].split("\n\n")[1]
    header, _, *rows = table.splitlines()
    at = header.strip("| ").split(" | ").index("family")
    assert {row.strip("| ").split(" | ")[at] for row in rows} == set(families.values())
