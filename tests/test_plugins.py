"""One way to plug things in: a dataset or logger registered from outside the package (here,
in this test module) with one YAML file on Hydra's search path is one like the built-in ones:
typed at composition, trained and evaluated through the command line."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from support import launch, results_under

from downsample_study.data.batches import Split
from downsample_study.data.datasets import DATASETS, register_dataset
from downsample_study.training.configs import LOGGERS, LoggerConfig
from downsample_study.training.tracking import Tracker

NAME = "stripes"


def stripes(cfg, data_dir, cache_dir) -> tuple[Split, Split]:
    """16×16 grey images, 4 classes: a bright horizontal stripe in one of four bands."""
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        labels = torch.arange(n) % 4
        images = torch.randint(0, 60, (n, 1, 16, 16), dtype=torch.uint8, generator=generator)
        for i, label in enumerate(labels.tolist()):
            images[i, :, 4 * label : 4 * label + 2, :] = 230
        return Split(images, labels)

    return split(400), split(100)


@pytest.fixture
def plugin(monkeypatch, tmp_path):
    """``stripes`` registered for this test only, and its YAML in a folder of its own."""
    monkeypatch.setattr(DATASETS, "builders", dict(DATASETS.builders))
    monkeypatch.setattr(DATASETS, "schemas", dict(DATASETS.schemas))
    register_dataset(NAME, channels=1, size=16, num_classes=4, mean=(0.3,), std=(0.3,))(stripes)
    conf = tmp_path / "my_conf" / "dataset"
    conf.mkdir(parents=True)
    (conf / f"{NAME}.yaml").write_text(f"defaults:\n  - /schema_dataset_{NAME}@_here_\n")
    return f"hydra.searchpath=[file://{conf.parent}]"


def test_a_dataset_registered_outside_the_package_trains_through_the_command_line(
    plugin, quick, tmp_path
):
    run = launch([*quick, plugin, f"dataset={NAME}", "dataset.val_size=50", "logger=csv",
                  "evaluation.feature_maps.images=4", "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed" and results["config"]["dataset"]["name"] == NAME
    # LeNet-5 built for 1×16×16 inputs and 4 classes: conv1 6×16×16 → pool 8 → conv2 16×4×4
    # → pool 2: 16·2·2 = 64 inputs to fc1
    assert results["params"]["total"] == 156 + 2_416 + (64 * 120 + 120) + 10_164 + (84 * 4 + 4)
    assert results["test"]["acc_top1"] > 0.5  # four easy classes, far above chance (0.25)


def test_a_registered_datasets_schema_is_checked_at_composition(plugin, quick, capsys):
    run = launch(["--cfg", "job", plugin, f"dataset={NAME}", "dataset.batch_sise=8"], capsys)
    assert run.exit_code == 1
    assert "dataset.batch_sise: no such key (did you mean batch_size?)" in run.output


REGISTRIES = ["downsample_study.nets.downsample_configs:DOWNSAMPLES",
              "downsample_study.nets.configs:MODELS",
              "downsample_study.data.configs:DATASETS",
              "downsample_study.training.configs:OPTIMIZERS",
              "downsample_study.training.configs:LOGGERS"]


def _registry(where: str):
    import importlib

    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("where", REGISTRIES)
def test_every_built_in_schema_has_its_builder_and_only_one(where):
    registry = _registry(where)
    for name in registry.names():
        assert registry[name] is registry.builders[name]  # loads the builders' module
    assert set(registry.builders) == set(registry.schemas)


def test_each_registrys_builders_load_on_its_first_lookup(tmp_path):
    import subprocess
    import sys

    code = ("import importlib, sys\n"
            f"registries = [getattr(importlib.import_module(m), n) for m, n in "
            f"{[where.split(':') for where in REGISTRIES]!r}]\n"
            "for r in registries:\n"
            "    before = r.builders_module in sys.modules\n"
            "    r[r.names()[0]]\n"
            "    print(r.kind, before, r.builders_module in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert out.stdout.split("\n")[:-1] == [f"{_registry(where).kind} False True"
                                            for where in REGISTRIES]


def test_a_built_in_name_cannot_be_registered_with_another_schema(monkeypatch):
    from downsample_study.data.configs import DatasetConfig
    from downsample_study.nets.downsample_configs import DOWNSAMPLES, MaxPoolConfig

    monkeypatch.setattr(DOWNSAMPLES, "builders", dict(DOWNSAMPLES.builders))
    monkeypatch.setattr(DOWNSAMPLES, "schemas", dict(DOWNSAMPLES.schemas))
    DOWNSAMPLES.builders.pop("maxpool", None)
    with pytest.raises(ValueError, match="declared with MaxPoolConfig, not DatasetConfig"):
        DOWNSAMPLES.add("maxpool", lambda cfg, point: None, DatasetConfig)
    DOWNSAMPLES.add("maxpool", lambda cfg, point: None, MaxPoolConfig)  # its own schema: fine
    with pytest.raises(ValueError, match="registered already"):
        DOWNSAMPLES.add("maxpool", lambda cfg, point: None)


@dataclass
class FolderConfig(LoggerConfig):
    folder: str = "mine"


class FolderTracker(Tracker):
    """Lightning's CSVLogger, in a folder the config names: a logger of the user's own."""

    def create(self, cfg, run, output_dir):
        return CSVLogger(save_dir=str(output_dir), name=cfg.folder, version="")


def test_a_logger_registered_outside_the_package_logs_beside_a_built_in_one(
    monkeypatch, quick, tmp_path
):
    monkeypatch.setattr(LOGGERS, "builders", dict(LOGGERS.builders))
    monkeypatch.setattr(LOGGERS, "schemas", dict(LOGGERS.schemas))
    LOGGERS.add("mine", FolderTracker(), FolderConfig)
    conf = tmp_path / "my_conf" / "logger"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("# @package logger.mine\ndefaults:\n"
                                    "  - /schema_logger_mine@_here_\n")
    run = launch([*quick, f"hydra.searchpath=[file://{conf.parent}]", "logger=[csv,mine]",
                  "logger.mine.folder=elsewhere", "evaluation.feature_maps.enabled=false",
                  "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert [tracker["name"] for tracker in results["trackers"]] == ["csv", "mine"]
    for folder in ("csv", "elsewhere"):
        assert "val/acc_top1" in (tmp_path / "out" / folder / "metrics.csv").read_text()
