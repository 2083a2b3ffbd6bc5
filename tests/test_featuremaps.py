"""Feature maps around each downsampling stage: which modules, the figure, and a job's outputs
(the PNG, the shift numbers in results.json, both logged to the chosen tracker)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from support import launch, read_wandb_runs, results_under

from downsample_study.data.batches import Split
from downsample_study.data.datasets import DATASETS
from downsample_study.evaluations.featuremaps import (
    capture,
    downsampling_stages,
    feature_map_figure,
    first_of_each_class,
)
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import available_downsamples, downsample_config

MNIST = DATASETS["mnist"]


def lenet5(op: str) -> torch.nn.Module:
    return build_model(model_config("lenet5"), downsample_config(op),
                       MNIST.input_shape, MNIST.num_classes)


@pytest.fixture
def test_split() -> Split:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=generator)
    return Split(images, torch.arange(40) % 10)


@pytest.mark.parametrize("op", available_downsamples())
def test_every_operator_shows_two_stages_that_halve_the_map(op):
    net = lenet5(op)
    names = [name for name, _ in downsampling_stages(net)]
    # stride2_fold adds no layer: its stages are the convolutions that carry the stride
    assert names == (["conv1", "conv2"] if op == "stride2_fold" else ["down1", "down2"])
    stages = capture(net, torch.randn(3, *MNIST.input_shape))
    assert [after.shape[-1] for _, _, after in stages] == [14, 5]
    assert all(before.shape[-1] > after.shape[-1] for _, before, after in stages)
    assert all(len(before) == 3 for _, before, _ in stages)


def test_images_are_the_first_of_each_class():
    labels = torch.tensor([3, 1, 1, 0, 2, 3, 0])
    assert first_of_each_class(labels, 4).tolist() == [3, 1, 4, 0]


@pytest.mark.parametrize("op", ["maxpool", "stride2_fold"])
def test_figure_has_input_and_before_after_per_stage(op, test_split, tmp_path):
    fig = feature_map_figure(lenet5(op), test_split, MNIST.mean, MNIST.std, images=3,
                             channels=4, title=op)
    assert len(fig.axes) == 3 * (1 + 2 * 2)
    assert [ax.get_ylabel() for ax in fig.axes[:: 1 + 2 * 2]] == ["class 0", "class 1", "class 2"]
    path = tmp_path / "maps.png"
    fig.savefig(path)
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG"


@pytest.mark.parametrize("logger", ["wandb", "tensorboard"])
def test_a_job_writes_and_logs_the_figure_and_the_shift_numbers(logger, quick, tmp_path):
    assert launch([*quick, f"logger={logger}", "hydra.run.dir=out"]).exit_code == 0
    out = tmp_path / "out"
    with Image.open(out / "feature_maps.png") as image:
        assert image.format == "PNG"
    [results] = results_under(out)
    shift = results["evaluations"]["shift"]["details"]
    assert shift["max"] == 3 and set(shift) >= {"zero", "circular"}
    assert 0 <= shift["circular"]["consistency"] <= 1
    names = {"test/shift_acc_zero", "test/shift_consistency_zero", "test/shift_acc_circular",
             "test/shift_consistency_circular"}
    if logger == "wandb":
        [run] = read_wandb_runs(out)
        logged = {k for row in run.history for k in row}
        # the figure is logged; the selected checkpoint's numbers are the run's summary
        assert "feature_maps" in logged and not names & logged
        assert run.summary["test/shift_consistency_circular"] == pytest.approx(
            shift["circular"]["consistency"])
    else:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        tags = {"images": set(), "scalars": set()}
        for events in (out / "tensorboard").glob("events.out.tfevents.*"):
            accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
            accumulator.Reload()
            for kind in tags:
                tags[kind] |= set(accumulator.Tags()[kind])
        assert "feature_maps" in tags["images"] and names <= tags["scalars"]


def test_evaluation_can_be_switched_off(quick, tmp_path):
    run = launch([*quick, "logger=none", "evaluation.shift.enabled=false",
                  "evaluation.feature_maps.enabled=false", "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed" and results["evaluations"] == {}
    assert not (tmp_path / "out" / "feature_maps.png").exists()
    assert (tmp_path / "out" / "epochs.csv").read_text().startswith("epoch,")
