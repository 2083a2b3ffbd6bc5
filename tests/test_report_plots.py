"""The report's plots: readable at a dozen variants, each dataset on its own scale, the
forest plot in its verdicts' colours, PNG with SVG beside, none left stale."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from support.evaluated_sweeps import EVALUATION_PLOTS
from support.report_sweeps import capture_figures, write_job, write_report_sweep

from downsample_study.layout import PLOTS
from downsample_study.report.build import build_report, write_report
from downsample_study.report.cli import main


@pytest.fixture
def sweep(tmp_path):
    return write_report_sweep(tmp_path / "sweep")


def test_the_tuning_plot_gives_each_dataset_its_own_accuracy_range(sweep, monkeypatch):
    from omegaconf import OmegaConf

    from downsample_study.report import plots

    figures = capture_figures(monkeypatch, plots)
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


def test_plots_are_valid_pngs_with_svgs_beside(sweep, tmp_path):
    from downsample_study.report.plots import plot_accuracy

    report = write_report(sweep, use_wandb=False)
    plot_accuracy(report, tmp_path / "again.png")  # the same plot, the same SVG: no date, ids
    assert (tmp_path / "again.svg").read_bytes() == (
        sweep / PLOTS["accuracy"]).with_suffix(".svg").read_bytes()
    for name in set(PLOTS.values()) - EVALUATION_PLOTS:  # test_report_evaluations: those
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

    figures = capture_figures(monkeypatch, plots)
    sweep = tmp_path / "sweep"
    operators = [f"op{i:02}" for i in range(plots.SMALL_MULTIPLES + 6)]
    for dataset, level in (("mnist", 0.97), ("fashion_mnist", 0.88)):
        for i, op in enumerate(operators):
            for seed in (0, 1):
                write_job(sweep, dataset, op, seed, level + 0.001 * i + 0.0005 * seed)
    write_report(sweep, use_wandb=False)
    svg = (sweep / PLOTS["curves"]).with_suffix(".svg").read_text()
    assert all(f"{op} (n = 2)" in svg for op in operators)
    assert "lenet5 · op00 (n = 2)" not in svg  # what every variant shares is left out
    height, width = imread(sweep / PLOTS["curves"]).shape[:2]
    assert height > 800 and width > 1000  # a grid, not one crowded panel
    [curves] = [f for f in figures if f.subfigs]
    tops = [max(ax.get_ylim()[1] for ax in part.axes) for part in curves.subfigs]
    bottoms = [min(ax.get_ylim()[0] for ax in part.axes) for part in curves.subfigs]
    assert min(tops) < max(bottoms)  # each dataset's panels on a range of their own
    params = (sweep / PLOTS["params"]).with_suffix(".svg").read_text()
    assert all(f"{op} (61,706)" in params for op in operators)  # each in the legend
    assert imread(sweep / PLOTS["params"]).shape[1] >= 1150  # room for the legend beside it
    [by_params] = [f for f in figures if "parameters" in f.axes[0].get_xlabel()]
    for ax in by_params.axes:  # one count, one tick: no spread of counts that are not there
        assert list(ax.get_xticks()) == [61_706]
        points = [line for line in ax.lines if line.get_marker() == "o"]
        assert len({to_rgba(p.get_color()) for p in points}) == len(points) == len(operators)


@pytest.mark.parametrize(("apart", "spread"), [
    (0.0001, 0.0),  # 0.01 pp apart at one consistency
    (0.0, 0.0),  # on one point
    (0.0001, 0.04),  # and 4 points of consistency apart, from 50 % to 94 %
])
def test_names_of_points_close_together_do_not_cover_each_other(apart, spread, tmp_path,
                                                                monkeypatch):
    """Accuracy against shift consistency names each point beside it, inside the axes (on
    the left of a point near the right edge); where points crowd the names are moved apart,
    each tied to its point by a line."""
    from matplotlib.text import Text

    from downsample_study.report import plots

    figures = capture_figures(monkeypatch, plots)
    sweep = tmp_path / "sweep"
    operators = [f"op{i:02}_with_a_name_longer_than_the_margins" for i in range(12)]
    for i, op in enumerate(operators):
        for seed in (0, 1):
            folder = write_job(sweep, "mnist", op, seed, 0.97 + apart * i + 0.0005 * seed)
            results = json.loads((folder / "results.json").read_text())
            results["evaluations"]["shift"]["summary"]["consistency_zero"] = 0.5 + spread * i
            (folder / "results.json").write_text(json.dumps(results))
    assert plots.plot_accuracy_vs_shift(build_report(sweep), tmp_path / "shift.png")
    [by_shift] = figures
    by_shift.draw_without_rendering()  # measured at the figure's dpi, not the SVG's last
    [ax] = by_shift.axes
    names = [t for t in ax.texts if t.get_text() in operators]
    assert sorted(t.get_text() for t in names) == operators
    boxes = [Text.get_window_extent(t) for t in names]  # the text's, not its leader line's
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    inside = ax.get_window_extent()
    assert all(inside.x0 <= box.x0 and box.x1 <= inside.x1 for box in boxes)
    if not spread:
        assert sum(t.arrow_patch is not None for t in names) >= len(operators) // 2


def test_the_differences_plot_shows_each_comparison_in_its_verdicts_colour(tmp_path,
                                                                          monkeypatch):
    """The forest plot: per dataset, each comparison's difference and CI, largest on top,
    coloured by its verdict, the equivalence margin shaded."""
    from matplotlib.colors import to_rgba

    from downsample_study.report import differences

    figures = capture_figures(monkeypatch, differences)
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
    # every variant is a lenet5: each its own baseline, none compared
    write_report(sweep, baselines=[{"model": "lenet5"}], use_wandb=False)
    assert not (sweep / PLOTS["differences"]).exists()
    assert not (sweep / PLOTS["differences"]).with_suffix(".svg").exists()
    assert PLOTS["differences"] not in (sweep / "report.md").read_text()


def test_without_plots_the_tables_are_written_and_no_earlier_plot_is_left(sweep, capsys):
    write_report(sweep, use_wandb=False)
    tables = {name: (sweep / name).read_text() for name in ("results.csv", "comparisons.csv")}
    assert main([str(sweep), "--no-plots", "--no-wandb"]) == 0
    assert "and plots" not in capsys.readouterr().out
    assert not list(sweep.glob("*.png")) and not list(sweep.glob("*.svg"))
    assert {name: (sweep / name).read_text() for name in tables} == tables
    plots = (sweep / "report.md").read_text().split("## Plots")[1].split("##")[0]
    assert "![" not in plots and "None drawn (`--no-plots`" in plots


@pytest.mark.parametrize("measured", [True, False])
def test_accuracy_against_shift_consistency_puts_each_variant_where_its_means_are(
        tmp_path, monkeypatch, measured):
    """Zhang 2019's trade-off: x the mean shift consistency, y the mean test top-1, each
    point named beside it; a sweep that measured no shifts draws no such plot."""
    import json

    from downsample_study.report import plots

    figures = capture_figures(monkeypatch, plots)
    sweep = tmp_path / "sweep"
    consistency = {"maxpool": (0.70, 0.72), "blurpool": (0.84, 0.86)}
    for op, by_seed in consistency.items():
        for seed, value in enumerate(by_seed):
            folder = write_job(sweep, "mnist", op, seed, 0.98 + 0.002 * seed)
            results = json.loads((folder / "results.json").read_text())
            results["evaluations"]["shift"]["summary"]["consistency_zero"] = value
            if not measured:
                del results["evaluations"]["shift"]
            (folder / "results.json").write_text(json.dumps(results))
    write_report(sweep, use_wandb=False)
    assert (sweep / PLOTS["shift"]).is_file() == measured
    assert (f"]({PLOTS['shift']})" in (sweep / "report.md").read_text()) == measured
    if measured:
        [figure] = [f for f in figures if "shift consistency" in f.axes[0].get_xlabel()]
        [ax] = figure.axes
        named = {text.get_text(): text.xy for text in ax.texts}
        assert set(named) == {"maxpool", "blurpool"}
        assert named["maxpool"] == pytest.approx((71.0, 98.1))
        assert named["blurpool"] == pytest.approx((85.0, 98.1))


def test_operators_of_one_family_share_a_hue_in_shades_of_it(tmp_path, monkeypatch):
    from matplotlib.colors import rgb_to_hsv, to_rgb

    from downsample_study.report import plots

    figures = capture_figures(monkeypatch, plots)
    sweep = tmp_path / "sweep"
    for i, op in enumerate(("maxpool", "lppool", "avgpool", "stride2")):  # 2 importance
        for seed in (0, 1):
            write_job(sweep, "mnist", op, seed, 0.97 + 0.001 * i + 0.0005 * seed)
    write_report(sweep, use_wandb=False)
    [by_params] = [f for f in figures if "parameters" in f.axes[0].get_xlabel()]
    [ax] = by_params.axes
    colours = {}  # each errorbar's data line, by the operator in its label
    for bar in ax.containers:
        colours[bar.get_label().split(" (")[0].split(" · ")[-1]] = to_rgb(
            bar.lines[0].get_color())
    hue = {op: round(float(rgb_to_hsv(rgb)[0]), 3) for op, rgb in colours.items()}
    assert hue["maxpool"] == hue["lppool"] and colours["maxpool"] != colours["lppool"]
    assert len({hue["maxpool"], hue["avgpool"], hue["stride2"]}) == 3
