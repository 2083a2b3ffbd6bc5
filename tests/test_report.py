"""The sweep report on a hand-made sweep folder whose numbers are known: statistics checked
against scipy, failures and missing jobs listed, plots written, W&B logged offline."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from support import read_wandb_runs

from downsample_study.report.build import write_report
from downsample_study.report.cli import main
from downsample_study.report.plots import PLOTS
from downsample_study.training.epochs import EPOCH_COLUMNS, EPOCHS_FILE

OPTIONS = {"maxpool": {"kernel_size": 2, "stride": 2}, "avgpool": {"kernel_size": 2, "stride": 2},
           "stride2": {"kernel_size": 3}}
# test top-1 per (dataset, operator) and seed
TOP1 = {
    ("mnist", "maxpool"): {0: 0.9810, 1: 0.9822, 2: 0.9815},
    ("mnist", "stride2"): {0: 0.9837, 1: 0.9841, 2: 0.9852},
    ("mnist", "avgpool"): {0: 0.9790, 1: 0.9801},  # other seeds than maxpool: Welch's test
    ("fashion_mnist", "maxpool"): {0: 0.9012, 1: 0.8950, 2: 0.8991},
    ("fashion_mnist", "stride2"): {0: 0.9030, 1: 0.9003, 2: 0.8962},
}


def config(dataset: str, op: str, seed: int, logger: str = "csv", batch_norm: bool = False
           ) -> dict:
    return {
        "dataset": {"name": dataset, "batch_size": 64},
        "downsample": {"name": op, "batch_norm": batch_norm, "dropout": 0.0,
                       **OPTIONS.get(op, {})},
        "model": {"name": "lenet5"},
        "optimizer": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999]},
        "logger": {"name": logger, "project": "downsample_study", "entity": None,
                   "mode": "auto", "group": None, "job_type": "train", "tags": []},
        "trainer": {"max_epochs": 3, "accelerator": "cpu", "devices": 1},
        "paths": {"data_dir": f"/somewhere/{seed}"},
        "seed": seed,
        "mode": "train",
    }


def write_job(sweep, dataset, op, seed, top1, logger="csv", batch_norm=False):
    folder = sweep / f"dataset={dataset},downsample={op},seed={seed}{',bn' * batch_norm}"
    folder.mkdir(parents=True)
    params = 61_706 + (2_650 if op == "stride2" else 0)
    results = {
        "status": "completed",
        "config": config(dataset, op, seed, logger, batch_norm),
        "group": "multirun_test",
        "params": {"total": params, "trainable": params, "downsample": params - 61_706},
        "flops_forward": 833_040,
        "val": {"acc_top1": top1 + 0.001, "acc_top2": 0.995, "loss": 0.05},
        "test": {"acc_top1": top1, "acc_top2": min(1.0, top1 + 0.012), "loss": 0.06},
        "shift": {"max_shift": 3, "samples": 1, "seed": 0,
                  "zero": {"acc_top1": top1 - 0.1, "consistency": 0.8},
                  "circular": {"acc_top1": top1 - 0.12, "consistency": 0.78}},
        "epochs": 3,
        "best_epoch": 2,
        "train_seconds": 10.0 + seed,
    }
    (folder / "results.json").write_text(json.dumps(results))
    with (folder / EPOCHS_FILE).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EPOCH_COLUMNS)
        for epoch in range(3):
            writer.writerow([epoch, 100 * (epoch + 1), epoch + 1.0, 0.3,
                             top1 - 0.02 * (2 - epoch), 0.99])
    return folder


@pytest.fixture
def sweep(tmp_path):
    sweep = tmp_path / "sweep"
    for (dataset, op), by_seed in TOP1.items():
        for seed, top1 in by_seed.items():
            write_job(sweep, dataset, op, seed, top1)
    failed = sweep / "dataset=mnist,downsample=stride2,seed=3"
    failed.mkdir()
    (failed / "results.json").write_text(json.dumps({
        "status": "failed", "config": config("mnist", "stride2", 3),
        "error": "training loss is nan at epoch 1, step 800: the run diverged",
    }))
    killed = sweep / "dataset=mnist,downsample=maxpool,seed=3"
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "overrides.yaml").write_text("- dataset=mnist\n- downsample=maxpool\n")
    return sweep


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def percent(values) -> np.ndarray:
    return 100 * np.array(list(values))


def test_variant_statistics_match_scipy(sweep):
    write_report(sweep, use_wandb=False)
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

    write_report(sweep, use_wandb=False)
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
    write_report(sweep, use_wandb=False)
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
    ("Consistency (zero fill), mean ± standard deviation", ("shift", "zero", "consistency")),
])
def test_each_variants_mean_is_also_one_table_at_a_glance(sweep, section, path):
    """A row per operator (best first, the baseline marked), a column per dataset, each cell
    the mean ± standard deviation over seeds; a pair the sweep lacks is a dash."""
    write_report(sweep, use_wandb=False)
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
            values.append(100 * results)
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
    write_report(sweep, use_wandb=False)
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
    write_report(sweep, use_wandb=False)
    section = (sweep / "report.md").read_text().split("## Training length")[1]
    line = next(x for x in section.splitlines() if x.startswith("- **mnist**"))
    assert "8 epochs" in line and "checkpoints' epoch 7.5 (mean over seeds" in line
    assert "from epoch 6 to 8 validation top-1 rose by +0.50 pp at the most" in line
    assert "lenet5 · maxpool" in line and "by +0.10 pp in the median variant" in line


@pytest.mark.parametrize(("best", "edge"), [(0.01, "highest"), (0.0001, "lowest"), (0.001, "")])
def test_a_tuned_rate_at_the_edge_of_the_rates_tried_is_flagged(sweep, best, edge):
    from omegaconf import OmegaConf

    rates = {0.0001: 0.95, 0.001: 0.96, 0.01: 0.94}
    rates[best] = 0.99
    folder = sweep / "tuning" / "dataset=mnist,downsample=stride2"
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"lr": best, "value": 0.99, "trials": [
        {"lr": lr, "value": value} for lr, value in rates.items()]}), folder / "best.yaml")
    write_report(sweep, use_wandb=False)
    text = (sweep / "report.md").read_text()
    if edge:
        assert f"**{best:.3g}** ({edge} tried)" in text
    else:
        assert "tried)" not in text
    assert ("1 of 1 variants' best rate is the highest or lowest" in text) == bool(edge)


def test_the_tuning_plot_gives_each_dataset_its_own_accuracy_range(sweep, monkeypatch):
    from omegaconf import OmegaConf

    from downsample_study.report import plots

    figures = []
    save = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path: (figures.append(fig), save(fig, path)))
    for dataset, level in (("mnist", 0.98), ("fashion_mnist", 0.89)):
        for op in ("maxpool", "stride2"):
            folder = sweep / "tuning" / f"dataset={dataset},downsample={op}"
            (folder / "trial0" / ".hydra").mkdir(parents=True)
            (folder / "trial0" / ".hydra" / "overrides.yaml").write_text(
                f"- dataset={dataset}\n- downsample={op}\n- optimizer.lr=0.001\n")
            OmegaConf.save(OmegaConf.create({"lr": 0.001, "value": level, "trials": [
                {"lr": lr, "value": level - 0.01 * k} for k, lr in enumerate((1e-3, 1e-2))]}),
                folder / "best.yaml")
    write_report(sweep, use_wandb=False)
    [tuning] = [f for f in figures if "learning-rate" in f.get_suptitle()]
    assert [part.get_suptitle() for part in tuning.subfigs] == ["fashion_mnist", "mnist"]
    ranges = [part.axes[0].get_ylim() for part in tuning.subfigs]
    assert ranges[0][1] < ranges[1][0]  # FashionMNIST's 88-89 % below MNIST's 97-98 %
    assert [ax.get_title() for ax in tuning.subfigs[0].axes] == ["maxpool", "stride2"]


def test_intervals_of_accuracies_stay_within_0_and_100_percent():
    from downsample_study.report.statistics import Stat

    stat = Stat.of([99.9, 98.0], (0.0, 100.0))  # at n = 2 the t interval runs past 100
    assert stat.high == 100.0 and stat.low < 98.0
    assert Stat.of([99.9, 98.0]).high > 100.0  # unbounded quantities keep theirs


def test_failed_and_missing_jobs_are_listed_not_dropped(sweep):
    write_report(sweep, use_wandb=False)
    text = (sweep / "report.md").read_text()
    assert "16 jobs: 14 completed, 1 failed, 1 missing; 5 variants" in text
    section = text.split("## Jobs without results")[1]
    assert "dataset=mnist,downsample=stride2,seed=3` | failed | training loss is nan" in section
    assert "dataset=mnist,downsample=maxpool,seed=3` | missing | no results.json" in section
    assert "| 3 (+1 failed) |" in text


def test_an_interrupted_job_is_listed_as_resumable_not_failed(sweep):
    folder = write_job(sweep, "mnist", "stride2", 4, 0.98)
    results = json.loads((folder / "results.json").read_text())
    results.update(status="interrupted", error="stopped by SIGTERM at epoch 2, step 20")
    (folder / "results.json").write_text(json.dumps(results))
    report = write_report(sweep, use_wandb=False)
    text = (sweep / "report.md").read_text()
    assert "17 jobs: 14 completed, 1 failed, 1 missing, 1 interrupted; 5 variants" in text
    assert (f"`{folder.name}` | interrupted | stopped by SIGTERM at epoch 2, step 20 (the "
            f"sweep's command resumes it)") in text
    [stride2] = [v for v in report.variants if v.label == "lenet5 · stride2"
                 and v.flat["dataset.name"] == "mnist"]
    assert len(stride2.failed) == 1  # the diverged seed 3 only


def test_a_seed_run_twice_is_counted_once_and_listed(sweep):
    again = write_job(sweep / "rerun", "mnist", "maxpool", 1, 0.5)
    report = write_report(sweep, use_wandb=False)
    [variant] = [v for v in report.variants if v.label == "lenet5 · maxpool"
                 and v.flat["dataset.name"] == "mnist"]
    assert variant.seeds == [0, 1, 2]
    assert variant.stat("test", "acc_top1").mean == pytest.approx(
        percent(TOP1["mnist", "maxpool"].values()).mean())
    [duplicate] = [j for j in report.unfinished if j.status == "duplicate"]
    assert duplicate.name == again.relative_to(sweep).as_posix()
    assert "1 duplicate" in (sweep / "report.md").read_text()


def test_jobs_that_never_started_are_listed(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        folder = write_job(sweep, "mnist", "maxpool", seed, 0.98)
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text(f"- downsample=maxpool\n- seed={seed}\n")
    (sweep / "multirun.yaml").write_text(
        "hydra:\n"
        "  sweeper:\n"
        "    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    params: {seed: '0,1,2'}\n"
        "  overrides:\n"
        "    task: [downsample=maxpool]\n"
    )
    report = write_report(sweep, use_wandb=False)
    assert [(j.status, j.name, j.error) for j in report.unfinished] == [
        ("missing", "downsample=maxpool,seed=2", "never started")]


def test_plots_are_valid_pngs_with_svgs_beside(sweep, tmp_path):
    from downsample_study.report.plots import plot_accuracy

    report = write_report(sweep, use_wandb=False)
    plot_accuracy(report, tmp_path / "again.png")  # the same plot, the same SVG: no date, ids
    assert (tmp_path / "again.svg").read_bytes() == (
        sweep / PLOTS["accuracy"]).with_suffix(".svg").read_bytes()
    for name in PLOTS.values():
        with Image.open(sweep / name) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 200
        assert f"]({name})" in (sweep / "report.md").read_text()
        svg = (sweep / name).with_suffix(".svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_a_dozen_variants_get_a_curve_panel_and_a_colour_each(tmp_path, monkeypatch):
    """At more variants than one panel can show apart, the validation curves become small
    multiples: one panel per variant, titled by what tells it apart, the best one in grey
    behind the others, axes shared within a dataset (not across: MNIST's 97 % would squash
    FashionMNIST's 88 %); the legend of accuracy against parameters moves beside its axes."""
    from matplotlib.colors import to_rgba
    from matplotlib.image import imread

    from downsample_study.report import plots

    figures = []
    save = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path: (figures.append(fig), save(fig, path)))
    sweep = tmp_path / "sweep"
    operators = [f"op{i:02}" for i in range(plots.SMALL_MULTIPLES + 6)]
    for dataset, level in (("mnist", 0.97), ("fashion_mnist", 0.88)):
        for i, op in enumerate(operators):
            for seed in (0, 1):
                write_job(sweep, dataset, op, seed, level + 0.001 * i + 0.0005 * seed)
    write_report(sweep, use_wandb=False)
    svg = (sweep / plots.PLOTS["curves"]).with_suffix(".svg").read_text()
    assert all(f"{op} (n = 2)" in svg for op in operators)
    assert "lenet5 · op00 (n = 2)" not in svg  # what every variant shares is left out
    height, width = imread(sweep / plots.PLOTS["curves"]).shape[:2]
    assert height > 800 and width > 1000  # a grid, not one crowded panel
    [curves] = [f for f in figures if f.subfigs]
    tops = [max(ax.get_ylim()[1] for ax in part.axes) for part in curves.subfigs]
    bottoms = [min(ax.get_ylim()[0] for ax in part.axes) for part in curves.subfigs]
    assert min(tops) < max(bottoms)  # each dataset's panels on a range of their own
    params = (sweep / plots.PLOTS["params"]).with_suffix(".svg").read_text()
    assert all(f"{op} (61,706)" in params for op in operators)  # each in the legend
    assert imread(sweep / plots.PLOTS["params"]).shape[1] >= 1150  # room for the legend beside it
    [by_params] = [f for f in figures if "parameters" in f.axes[0].get_xlabel()]
    for ax in by_params.axes:  # one count, one tick: no spread of counts that are not there
        assert list(ax.get_xticks()) == [61_706]
        points = [line for line in ax.lines if line.get_marker() == "o"]
        assert len({to_rgba(p.get_color()) for p in points}) == len(points) == len(operators)


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


def test_report_is_logged_to_the_sweeps_wandb_group_offline(tmp_path):
    sweep = tmp_path / "sweep"
    for (dataset, op), by_seed in TOP1.items():
        for seed, top1 in by_seed.items():
            write_job(sweep, dataset, op, seed, top1, logger="wandb")
    assert main([str(sweep)]) == 0
    [run] = read_wandb_runs(sweep / "wandb")
    assert run.job_type == "report" and run.group == "multirun_test"
    logged = {k for row in run.history for k in row}
    assert {"report/variants", "report/comparisons", "report/accuracy"} <= logged
    assert run.exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [(["nowhere"], "no such folder"), (["."], "no jobs found"),
     ([".", "--baseline", "maxpool"], "expected KEY=VALUE")],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_baseline_can_fix_several_keys(sweep):
    report = write_report(sweep, [{"dataset": "fashion_mnist", "downsample": "maxpool"}],
                          use_wandb=False)
    assert {c.what for c in report.comparisons} == {
        "mnist+maxpool − fashion_mnist+maxpool",
        "mnist+stride2 − fashion_mnist+maxpool",
        "mnist+avgpool − fashion_mnist+maxpool",
        "fashion_mnist+stride2 − fashion_mnist+maxpool",
    }


def test_the_differences_plot_shows_each_comparison_in_its_verdicts_colour(tmp_path,
                                                                          monkeypatch):
    """The forest plot: per dataset, each comparison's difference and CI, largest on top,
    coloured by its verdict, the equivalence margin shaded."""
    from matplotlib.colors import to_rgba

    from downsample_study.report import differences

    figures = []
    save = differences.save
    monkeypatch.setattr(differences, "save",
                        lambda fig, path: (figures.append(fig), save(fig, path)))
    sweep = tmp_path / "sweep"
    maxpool = [0.9810, 0.9822, 0.9815, 0.9818, 0.9812]
    offsets = {"maxpool": [0] * 5, "stride2": [0.010, 0.011, 0.009, 0.010, 0.012],  # better
               "avgpool": [0.0002, -0.0001, 0.0001, -0.0002, 0.0],  # equivalent within 0.5 pp
               "lppool": [0.008, -0.009, 0.006, -0.007, 0.004]}  # inconclusive
    for dataset in ("mnist", "fashion_mnist"):
        for op, extra in offsets.items():
            for seed, (top1, plus) in enumerate(zip(maxpool, extra, strict=True)):
                write_job(sweep, dataset, op, seed, top1 + plus)
    report = write_report(sweep, use_wandb=False, margin=0.5)
    [fig] = figures
    verdicts = {c.outcome for c in report.comparisons}
    assert verdicts == {"better", "equivalent", "inconclusive"}
    for dataset in ("mnist", "fashion_mnist"):
        [ax] = [ax for ax in fig.axes if ax.get_title().startswith(f"{dataset},")]
        mine = sorted((c for c in report.comparisons
                       if c.variant.flat["dataset.name"] == dataset), key=lambda c: -c.diff)
        points = [line for line in ax.lines if line.get_marker() == "o"]
        bars = [line for line in ax.lines if line.get_marker() != "o"
                and len(line.get_ydata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]]
        assert [p.get_xdata()[0] for p in points] == pytest.approx([c.diff for c in mine])
        assert [p.get_ydata()[0] for p in points] == list(range(len(mine)))  # largest on top
        assert [tuple(b.get_xdata()) for b in bars] == [pytest.approx((c.low, c.high))
                                                        for c in mine]
        assert [to_rgba(p.get_color()) for p in points] == [
            to_rgba(differences.VERDICT_COLORS[c.outcome]) for c in mine]
        [band] = ax.patches
        assert band.get_x() == pytest.approx(-0.5) and band.get_width() == pytest.approx(1.0)
    assert "Holm over 6 comparisons" in fig.get_suptitle()
    assert f"]({PLOTS['differences']})" in (sweep / "report.md").read_text()


def test_a_plot_an_earlier_report_drew_is_removed_when_this_one_draws_none(sweep):
    write_report(sweep, use_wandb=False)
    assert (sweep / PLOTS["differences"]).is_file()
    write_report(sweep, baselines=[{"downsample": "lppool"}], use_wandb=False)  # no such one
    assert not (sweep / PLOTS["differences"]).exists()
    assert not (sweep / PLOTS["differences"]).with_suffix(".svg").exists()
    assert PLOTS["differences"] not in (sweep / "report.md").read_text()
