"""The report's account of the evaluations on hand-made sweeps whose numbers are known: a
section per evaluation run (its summaries' means over seeds), none for one not run, mCE against
a hand-computed value, the heat maps and trade-offs drawn, the headline numbers compared, and
a file written before schema 8 still giving its shift section."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from support.evaluated_sweeps import (
    EVALUATED,
    EVALUATION_PLOTS,
    LEVELS,
    SEEDS,
    add_evaluations,
    corruptions,
    every_evaluation,
    summaries,
    write_evaluated_sweep,
)
from support.report_sweeps import capture_figures, write_job

from downsample_study.layout import PLOTS
from downsample_study.report.build import build_report, write_report
from downsample_study.report.variants import FRACTION_DECIMALS

TITLES = {"shift_grid": "## Accuracy at every shift", "equivariance": "## Equivariance",
          "aliasing": "## Aliasing", "corruptions": "## Corruptions",
          "attacks": "## Adversarial attacks", "cost": "## Inference cost"}
# the summaries that are no fraction of images, so not in percent
AS_MEASURED = {"equivariance": 4, "cost": 2}  # their decimals


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    sweep = write_evaluated_sweep(tmp_path_factory.mktemp("evaluated") / "sweep")
    write_report(sweep, use_wandb=False, draw_plots=False)
    return sweep


@pytest.fixture(scope="module")
def built(evaluated):
    return build_report(evaluated)


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def section(text: str, evaluation: str) -> str:
    after = text.split(TITLES[evaluation])[1]
    return after.split("\n## ")[0]


def table(lines: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header and the rows (by their operator) of the section's table of every variant."""
    part = lines.split("Every variant:")[-1] if "Every variant:" in lines else lines
    found = next(block for block in part.split("\n\n") if block.startswith("| dataset"))
    header, _, *rows = found.splitlines()
    cells = [row.strip("| ").split(" | ") for row in rows]
    return header.strip("| ").split(" | "), {row[1].split(" · ")[-1]: row for row in cells}


def seeds_mean(values: list[float], evaluation: str) -> tuple[float, float, int]:
    """As the report states them: mean and sd over seeds, fractions as percentages of counts."""
    if evaluation in AS_MEASURED:
        return np.mean(values), np.std(values, ddof=1), AS_MEASURED[evaluation]
    scaled = [round(100 * v, FRACTION_DECIMALS) for v in values]
    return np.mean(scaled), np.std(scaled, ddof=1), 2


@pytest.mark.parametrize("evaluation", EVALUATED)
def test_each_evaluation_has_a_table_of_its_summaries_mean_over_seeds(evaluated, evaluation):
    """Each summary key a column (per corruption: a table of its own), each cell the mean ±
    standard deviation over seeds of the files' numbers; results.csv the means and CIs."""
    text = section((evaluated / "report.md").read_text(), evaluation)
    header, rows = table(text)
    if evaluation == "corruptions":
        per_corruption = text.split("Error per corruption")[1]
        extra_header, extra_rows = table(per_corruption)
    if evaluation == "cost":  # timings compare only on one device
        assert "Measured on: cpu." in text
    csv_rows = {row["downsample"]: row for row in read_csv(evaluated / "results.csv")}
    assert set(rows) == set(LEVELS)
    for op, by_key in summaries(evaluated, evaluation).items():
        for key, values in by_key.items():
            mean, sd, places = seeds_mean(values, evaluation)
            if key.startswith("error_"):
                cell = extra_rows[op][extra_header.index(key.removeprefix("error_"))]
            else:
                title = key if evaluation in AS_MEASURED else f"{key} %"
                cell = rows[op][header.index(title)]
            assert cell == f"{mean:.{places}f} ± {sd:.{places}f}", (op, key)
            row = csv_rows[op]
            assert float(row[f"{evaluation}_{key}_mean"]) == pytest.approx(mean)
            if sd:
                low, high = stats.t.interval(0.95, len(values) - 1, loc=mean,
                                             scale=sd / np.sqrt(len(values)))
                assert float(row[f"{evaluation}_{key}_ci_low"]) == pytest.approx(low)
                assert float(row[f"{evaluation}_{key}_ci_high"]) == pytest.approx(high)


@pytest.mark.parametrize("names", [(), ("attacks",), ("corruptions", "cost")])
def test_only_the_evaluations_some_variant_ran_have_a_section(tmp_path, names):
    sweep = tmp_path / "sweep"
    write_evaluated_sweep(sweep, names, ops=("maxpool", "stride2"))
    write_job(sweep, "mnist", "avgpool", 0, 0.98)  # ran none: in no section's table
    write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    assert {name for name in EVALUATED if TITLES[name] in text} == set(names)
    for name in names:
        assert set(table(section(text, name))[1]) == {"maxpool", "stride2"}
    columns = set(read_csv(sweep / "results.csv")[0])
    assert {name for name in EVALUATED if any(c.startswith(f"{name}_") for c in columns)} \
        == set(names)


def test_an_evaluation_the_report_does_not_know_gets_a_table_of_its_own(tmp_path):
    """A plug-in's: titled by its name, its summary keys as they are, mean over seeds."""
    sweep = tmp_path / "sweep"
    for op, level in (("maxpool", 1.0), ("stride2", 2.0)):
        for seed in (0, 1):
            folder = write_job(sweep, "mnist", op, seed, 0.98)
            add_evaluations(folder, {"mean_logit": {"summary": {"mean": level + seed},
                                                    "details": {}, "seconds": 0.1}})
    write_report(sweep, use_wandb=False, draw_plots=False)
    text = (sweep / "report.md").read_text()
    part = text.split("## mean_logit")[1].split("\n## ")[0]
    rows = {line.split("|")[2].strip(): line for line in part.splitlines()
            if line.startswith("| mnist")}
    assert "1.50 ± 0.71" in rows["lenet5 · maxpool"] and "2.50 ± 0.71" in rows["lenet5 · stride2"]
    assert float(read_csv(sweep / "results.csv")[0]["mean_logit_mean_mean"]) in (1.5, 2.5)


def _corrupted(sweep, op, seed, clean, noise, blur):
    folder = write_job(sweep, "mnist", op, seed, 0.98)
    add_evaluations(folder, {"corruptions": corruptions(
        clean, {"noise": noise, "blur": blur})})


def test_mce_is_each_corruptions_summed_error_relative_to_the_baselines(tmp_path):
    """Hendrycks & Dietterich's mCE by hand: CE_c = Σ_s E_s,c / Σ_s E_s,c of maxpool (its
    mean over seeds), averaged over c; relative mCE with E − E_clean. maxpool's errors:
    clean 0.11, noise 0.21 + 0.39 = 0.60, blur 0.30 + 0.52 = 0.82 (means over its seeds)."""
    sweep = tmp_path / "sweep"
    _corrupted(sweep, "maxpool", 0, 0.10, [0.20, 0.40], [0.30, 0.50])
    _corrupted(sweep, "maxpool", 1, 0.12, [0.22, 0.38], [0.30, 0.54])
    _corrupted(sweep, "blurpool", 0, 0.08, [0.15, 0.30], [0.20, 0.40])
    _corrupted(sweep, "blurpool", 1, 0.10, [0.18, 0.27], [0.25, 0.41])
    mce = [100 * (0.45 / 0.60 + 0.60 / 0.82) / 2, 100 * (0.45 / 0.60 + 0.66 / 0.82) / 2]
    relative = [100 * ((0.07 + 0.22) / 0.38 + (0.12 + 0.32) / 0.60) / 2,
                100 * ((0.08 + 0.17) / 0.38 + (0.15 + 0.31) / 0.60) / 2]
    write_report(sweep, use_wandb=False, draw_plots=False)
    rows = {row["downsample"]: row for row in read_csv(sweep / "results.csv")}
    assert float(rows["blurpool"]["corruptions_mce_mean"]) == pytest.approx(np.mean(mce))
    assert float(rows["blurpool"]["corruptions_relative_mce_mean"]) == pytest.approx(
        np.mean(relative))
    assert float(rows["maxpool"]["corruptions_mce_mean"]) == pytest.approx(100)
    header, cells = table(section((sweep / "report.md").read_text(), "corruptions"))
    assert cells["blurpool"][header.index("mCE %")] == \
        f"{np.mean(mce):.2f} ± {np.std(mce, ddof=1):.2f}"
    assert cells["blurpool"][header.index("relative mCE %")] == \
        f"{np.mean(relative):.2f} ± {np.std(relative, ddof=1):.2f}"


def test_without_a_baseline_the_corruptions_give_their_unnormalised_mean_error(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):  # no maxpool, report.baselines' default
        _corrupted(sweep, "blurpool", seed, 0.08, [0.15, 0.30], [0.20, 0.40])
    write_report(sweep, use_wandb=False, draw_plots=False)
    text = section((sweep / "report.md").read_text(), "corruptions")
    header, _ = table(text)
    assert "mCE %" not in header and "mean_error %" in header
    assert "No variant has a baseline (downsample=maxpool) that measured them, so no mCE: " \
           "`mean_error` is the unnormalised mean error" in text
    assert read_csv(sweep / "results.csv")[0]["corruptions_mce_mean"] == ""


def test_the_heat_maps_show_each_variants_accuracy_at_each_shift_mean_over_seeds(
        built, tmp_path, monkeypatch):
    """One figure per fill, a panel per variant: its image the mean over seeds of the
    accuracy grid, row dy + r, column dx + r, x from −r to r left to right."""
    from downsample_study.report import evaluation_plots

    figures = capture_figures(monkeypatch, evaluation_plots, saved=False)
    for mode in ("circular", "zero"):
        assert evaluation_plots.plot_shift_grid(built, mode, tmp_path / f"{mode}.png")
        fig = figures.pop()
        panels = {ax.get_title().split(" (n = ")[0]: ax for ax in fig.axes if ax.images}
        assert set(panels) == set(LEVELS)
        for op in LEVELS:
            grids = [every_evaluation(op, s)["shift_grid"]["details"][mode]["accuracy"]
                     for s in SEEDS]
            [image] = panels[op].images
            assert np.asarray(image.get_array()) == pytest.approx(100 * np.mean(grids, axis=0))
            assert tuple(image.get_extent()) == (-1.5, 1.5, 1.5, -1.5)


def test_the_evaluations_plots_are_linked_and_none_is_left_once_not_drawn(tmp_path):
    """Heat maps, trade-offs (the worst-case shift alone here) and attacks: PNGs with SVGs
    beside, in the report's plots; a report of the sweep without those evaluations (its
    jobs' files rewritten) leaves none of them."""
    sweep = write_evaluated_sweep(tmp_path / "sweep", ("shift_grid", "attacks"),
                                  ops=("maxpool", "blurpool"))
    write_report(sweep, use_wandb=False)
    text = (sweep / "report.md").read_text()
    for name in EVALUATION_PLOTS:
        with Image.open(sweep / name) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 200
        assert f"]({name})" in text and (sweep / name).with_suffix(".svg").is_file()
    for path in sweep.glob("*/results.json"):
        results = json.loads(path.read_text())
        results["evaluations"] = {"shift": results["evaluations"]["shift"]}
        path.write_text(json.dumps(results))
    write_report(sweep, use_wandb=False)
    assert [p.name for p in sweep.iterdir() if p.stem in {Path(n).stem for n in
                                                          EVALUATION_PLOTS}] == []
    assert PLOTS["shift"] in (sweep / "report.md").read_text()


def test_the_trade_offs_put_each_variant_at_its_robustness_and_accuracy(evaluated, built,
                                                                        tmp_path, monkeypatch):
    """Test top-1 (y) against the worst-case shift accuracy and against mCE (x): a row each,
    every point named at its means."""
    from downsample_study.report import evaluation_plots

    figures = capture_figures(monkeypatch, evaluation_plots, saved=False)
    assert evaluation_plots.plot_tradeoffs(built, tmp_path / "tradeoffs.png")
    [fig] = figures
    shift_row, corruption_row = fig.axes
    assert "worst_circular" in shift_row.get_xlabel() and "mCE" in corruption_row.get_xlabel()
    rows = {row["downsample"]: row for row in read_csv(evaluated / "results.csv")}
    for ax, column in ((shift_row, "shift_grid_worst_circular_mean"),
                       (corruption_row, "corruptions_mce_mean")):
        named = {text.get_text(): text.xy for text in ax.texts}
        assert set(named) == set(LEVELS)
        for op, (x, y) in named.items():
            assert (x, y) == pytest.approx((float(rows[op][column]),
                                            float(rows[op]["test_top1_mean"])))


def test_accuracy_under_attack_is_drawn_against_the_budget(evaluated, built, tmp_path,
                                                           monkeypatch):
    from downsample_study.report import evaluation_plots

    figures = capture_figures(monkeypatch, evaluation_plots, saved=False)
    assert evaluation_plots.plot_attacks(built, tmp_path / "attacks.png")
    [ax] = figures[0].axes
    found = summaries(evaluated, "attacks")["blurpool"]
    pgd = next(line for line in ax.lines if line.get_label() == "blurpool")
    assert list(pgd.get_xdata()) == [0.0, 1.0, 8.0]
    assert list(pgd.get_ydata()) == pytest.approx(
        [100 * np.mean(found[k]) for k in ("clean", "pgd_eps1", "pgd_eps8")])


@pytest.mark.parametrize(("evaluation", "key", "lower_is_better"), [
    ("shift_grid", "worst_circular", False), ("corruptions", "mean_error", True),
    ("attacks", "pgd_eps8", False), ("aliasing", "trained", True)])
def test_each_evaluations_headline_is_compared_with_the_baseline_in_its_own_family(
        evaluated, evaluation, key, lower_is_better):
    """The paired t-test (scipy) of each operator against maxpool, Holm-adjusted over this
    headline's comparisons only (statsmodels): test top-1's family stays as it was; the
    verdict's direction follows the metric (an error lower is better)."""
    from statsmodels.stats.multitest import multipletests

    found = summaries(evaluated, evaluation)
    pp = {op: np.array([round(100 * v, FRACTION_DECIMALS) for v in found[op][key]])
          for op in LEVELS}
    tests = {op: stats.ttest_rel(pp[op], pp["maxpool"]) for op in ("blurpool", "stride2")}
    holm = dict(zip(tests, multipletests([t.pvalue for t in tests.values()],
                                         method="holm")[1], strict=True))
    rows = {row["downsample"]: row for row in read_csv(evaluated / "results.csv")}
    text = section((evaluated / "report.md").read_text(), evaluation)
    for op in tests:
        diff = pp[op].mean() - pp["maxpool"].mean()
        assert float(rows[op][f"{evaluation}_{key}_diff_pp"]) == pytest.approx(diff)
        assert float(rows[op][f"{evaluation}_{key}_p_holm"]) == pytest.approx(holm[op])
        assert holm[op] < 0.05  # the sweep's differences are clear
        better = (diff > 0) != lower_is_better
        assert rows[op][f"{evaluation}_{key}_verdict"] == ("better" if better else "worse")
        assert f"**{'better' if better else 'worse'}** at n = 3" in text.split(
            f"lenet5 · {op}**: ")[1].splitlines()[0]
    assert f"over the 2 tested comparisons of {key}: a family of its own" in text
    assert "over this report's 2 tested comparisons, the family" in (
        evaluated / "report.md").read_text()  # test top-1's: blurpool's and stride2's


@pytest.mark.parametrize("schema", [1, 7])
def test_a_file_written_before_schema_8_gives_the_same_shift_section(tmp_path, schema):
    """Its ``shift`` entry (``max_shift``, accuracies per fill) read as ``evaluations.shift``:
    the shift section, its glance and the plot as from a file of today's schema."""
    sections = []
    for version in (schema, 8):
        sweep = tmp_path / f"schema{version}"
        for op, top1 in (("maxpool", 0.98), ("blurpool", 0.985), ("stride2", 0.97)):
            for seed in (0, 1):
                write_job(sweep, "mnist", op, seed, top1 + seed / 1000, schema=version)
        write_report(sweep, use_wandb=False, draw_plots=False)
        text = (sweep / "report.md").read_text()
        sections.append(text.split("## Shift robustness")[1].split("\n## ")[0])
        rows = {row["downsample"]: row for row in read_csv(sweep / "results.csv")}
        assert {float(row["shift_zero_consistency_mean"]) for row in rows.values()} == {80.0}
        assert float(rows["maxpool"]["shift_circular_acc_top1_mean"]) == pytest.approx(86.05)
    old, new = sections
    assert old == new and "(random shifts of up to ±3 px)" in old
    assert "| mnist | lenet5 · maxpool | 61,706 | 98.05 ± 0.07 | 88.05 ± 0.07 | 80.00 ± 0.00 " \
           "| 86.05 ± 0.07 | 78.00 ± 0.00 | out |" in old
