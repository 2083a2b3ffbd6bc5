"""Translated datasets: each 28×28 image whole on a blank canvas, where its split's seeded draw
(or the centre) puts it, composed and trained on through the command line like any dataset."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support import launch, results_under

import downsample_study as ds
from downsample_study.data.canvas import place, positions, spread
from downsample_study.data.configs import CanvasConfig, Placement
from downsample_study.data.datasets import DATASETS, DatasetConfig, load_splits

SOURCES = {"translated_mnist": "mnist", "translated_fashion_mnist": "fashion_mnist"}


def splits(data_dir, tmp_path, name="translated_mnist", **options):
    cfg = CanvasConfig(name=name, **options)
    return cfg, load_splits(cfg, data_dir, tmp_path / "cache")


def sources(data_dir, tmp_path, name="translated_mnist"):
    return load_splits(DatasetConfig(name=SOURCES[name]), data_dir, tmp_path / "cache")


def assert_on_blank_canvas(canvases, images, corners):
    """Each image equals its canvas's crop at its corner, and the canvas is zero elsewhere."""
    side = images.shape[-1]
    for canvas, image, (row, col) in zip(canvases, images, corners.tolist(), strict=True):
        assert torch.equal(canvas[:, row : row + side, col : col + side], image)
        rest = canvas.clone()
        rest[:, row : row + side, col : col + side] = 0
        assert not rest.any()


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize(("canvas", "max_offset"), [(28, None), (45, None), (61, 3)])
def test_each_image_lies_whole_at_its_drawn_corner_on_a_blank_canvas(
    name, canvas, max_offset, data_dir, tmp_path
):
    cfg, translated = splits(data_dir, tmp_path, name, canvas=canvas, max_offset=max_offset)
    assert DATASETS[name].configured(cfg).input_shape == (1, canvas, canvas)
    for split, source, which in zip(translated, sources(data_dir, tmp_path, name),
                                    ("train", "test"), strict=True):
        assert split.images.shape == (len(source), 1, canvas, canvas)
        assert torch.equal(split.labels, source.labels)
        assert_on_blank_canvas(split.images, source.images, positions(cfg, len(source), which))


def test_the_drawn_corner_is_the_only_place_the_image_lies(data_dir, tmp_path):
    """The corners ``positions`` reports are where the image is, found by searching the canvas."""
    cfg, (train, _) = splits(data_dir, tmp_path, canvas=40)
    source, _ = sources(data_dir, tmp_path)
    corners = positions(cfg, len(source), "train")
    for i in range(20):
        found = [(r, c) for r in range(13) for c in range(13)
                 if torch.equal(train.images[i, :, r : r + 28, c : c + 28], source.images[i])]
        assert found == [tuple(corners[i].tolist())]


def test_the_placement_is_fixed_by_the_split_seed(data_dir, tmp_path):
    _, (train, test) = splits(data_dir, tmp_path, split_seed=0)
    _, (again, test_again) = splits(data_dir, tmp_path, split_seed=0)
    _, (other, test_other) = splits(data_dir, tmp_path, split_seed=1)
    assert torch.equal(train.images, again.images) and torch.equal(test.images, test_again.images)
    moved = (other.images != train.images).flatten(1).any(1).float().mean()
    assert moved > 0.9  # nearly every image elsewhere (two of 33² corners agree rarely)
    assert (test_other.images != test.images).flatten(1).any(1).float().mean() > 0.9


@pytest.mark.parametrize(("canvas", "max_offset", "low", "high"), [
    (60, None, 0, 32), (61, None, 0, 33), (29, None, 0, 1), (60, 5, 11, 21), (60, 0, 16, 16),
])
def test_random_corners_cover_their_whole_range_and_no_more(canvas, max_offset, low, high):
    cfg = CanvasConfig(name="translated_mnist", canvas=canvas, max_offset=max_offset)
    corners = positions(cfg, 3000, "train")
    for axis in corners.T:  # every corner in range drawn (about 90 times each), none beyond
        assert axis.unique().tolist() == list(range(low, high + 1))
    if high - low >= 10:  # rows and columns drawn apart, not along the diagonal
        assert (corners[:, 0] == corners[:, 1]).float().mean() < 0.1


@pytest.mark.parametrize(("canvas", "corner"), [(28, 0), (60, 16), (61, 16)])
def test_centre_placement_puts_every_image_in_the_middle(canvas, corner, data_dir, tmp_path):
    _, translated = splits(data_dir, tmp_path, canvas=canvas,
                           train_placement=Placement.centre, test_placement=Placement.centre)
    for split, source in zip(translated, sources(data_dir, tmp_path), strict=True):
        # margins of `corner` above and left, and the rest (one more on an odd room) below
        assert_on_blank_canvas(split.images, source.images,
                               torch.full((len(source), 2), corner))


def test_train_centred_and_test_translated_by_config_each_split_drawing_apart(
    data_dir, tmp_path
):
    """Centring one split leaves the other's draws as they were; the two draw differently."""
    _, (train, test) = splits(data_dir, tmp_path)
    _, (centred_train, same_test) = splits(data_dir, tmp_path, train_placement="centre")
    _, (same_train, centred_test) = splits(data_dir, tmp_path, test_placement="centre")
    source_train, source_test = sources(data_dir, tmp_path)
    assert torch.equal(same_test.images, test.images)
    assert torch.equal(same_train.images, train.images)
    assert_on_blank_canvas(centred_train.images, source_train.images,
                           torch.full((len(source_train), 2), 16))
    assert_on_blank_canvas(centred_test.images, source_test.images,
                           torch.full((len(source_test), 2), 16))
    cfg = CanvasConfig(name="translated_mnist")
    n = len(source_test)
    assert (positions(cfg, n, "train") != positions(cfg, n, "test")).any(1).float().mean() > 0.9


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize("canvas", [28, 60, 100])
def test_the_normalisation_is_the_sources_spread_over_the_canvas(name, canvas, data_dir,
                                                                 tmp_path):
    """The mean and std over the canvases' pixels follow from the source's: the same pixels
    and zeros. Measured on the synthetic files, and applied to the registered statistics."""
    _, (train, _) = splits(data_dir, tmp_path, name, canvas=canvas)
    source, _ = sources(data_dir, tmp_path, name)
    on_canvas, alone = (train.images.double() / 255, source.images.double() / 255)
    mean, std = spread((alone.mean().item(),), (alone.std(unbiased=False).item(),), canvas)
    assert mean[0] == pytest.approx(on_canvas.mean().item(), rel=1e-9)
    assert std[0] == pytest.approx(on_canvas.std(unbiased=False).item(), rel=1e-9)
    info = DATASETS[name].configured(CanvasConfig(name=name, canvas=canvas))
    assert (info.mean, info.std) == spread(DATASETS[SOURCES[name]].mean,
                                           DATASETS[SOURCES[name]].std, canvas)
    assert info.classes == DATASETS[SOURCES[name]].classes


def test_images_are_placed_in_chunks_as_in_one(monkeypatch):
    images = torch.randint(1, 256, (10, 2, 3, 3), dtype=torch.uint8)
    corners = torch.randint(0, 5, (10, 2))
    whole = place(images, corners, 8)
    monkeypatch.setattr("downsample_study.data.canvas.CHUNK", 3)
    assert torch.equal(place(images, corners, 8), whole)
    assert_on_blank_canvas(whole, images, corners)  # channels each at the same corner


@pytest.mark.parametrize(("override", "message"), [
    ("dataset.canvas=20", "dataset.canvas: a canvas of 20 px cannot hold a 28×28 image; at "
                          "least 28"),
    ("dataset.max_offset=17", "dataset.max_offset: 0 to 16 on a 60 px canvas (null: anywhere "
                              "on it), got 17"),
    ("dataset.max_offset=-1", "dataset.max_offset: 0 to 16"),
    ("dataset.test_placement=middle", "dataset.test_placement: unknown value 'middle'; "
                                      "allowed: random, centre"),
])
def test_a_bad_canvas_option_is_refused_in_one_line_naming_its_key(override, message, quick,
                                                                  capsys, tmp_path):
    run = launch([*quick, "dataset=translated_mnist", override, "hydra.run.dir=out"], capsys)
    assert run.exit_code != 0 and message in run.output, run.output[-2000:]
    assert "Traceback" not in run.output
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("name", list(SOURCES))
def test_a_translated_dataset_composes_with_its_options(name, capsys):
    run = launch(["--cfg", "job", f"dataset={name}", "dataset.canvas=40",
                  "dataset.train_placement=centre"], capsys)
    assert run.exit_code == 0
    for line in (f"name: {name}", "canvas: 40", "train_placement: centre",
                 "test_placement: random", "max_offset: null"):
        assert f"\n  {line}\n" in run.output


def test_lenet5_trains_on_centred_digits_and_is_tested_on_translated_ones(quick, tmp_path):
    run = launch([*quick, "dataset=translated_mnist", "dataset.canvas=40",
                  "dataset.train_placement=centre", "dataset.test_placement=random",
                  "model=lenet5", "logger=none", "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed"
    assert results["config"]["dataset"] | {"canvas": 40, "train_placement": "centre"} \
        == results["config"]["dataset"]
    # built for 1×40×40: conv1 6×40×40 → pool 20 → conv2 16×16×16 → pool 8: 16·8·8 to fc1
    assert results["params"]["total"] == 156 + 2_416 + (1024 * 120 + 120) + 10_164 + 850
    # the finished job, loaded, takes its canvases and measures again what it recorded
    finished = ds.load_run(tmp_path / "out")
    assert finished.dataset.input_shape == (1, 40, 40)
    assert finished.evaluate("test") == pytest.approx(results["test"], rel=1e-6)


def test_a_translated_dataset_is_registered_like_the_built_in_ones():
    for name, source in SOURCES.items():
        info = DATASETS[name]
        assert DATASETS.schema(name) is CanvasConfig
        assert info.input_shape == (1, 60, 60)  # as registered: the default canvas
        assert dataclasses.replace(info.configured(CanvasConfig(name=name)), configure=None) \
            == dataclasses.replace(info, configure=None)
        assert DATASETS[source].configured(DatasetConfig(name=source)) is DATASETS[source]
