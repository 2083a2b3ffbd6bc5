"""The evaluations as plug-ins: one registry, a node each under ``evaluation.*``, run after the
test pass on the selected checkpoint, recorded, logged, and run again by ``mode=eval`` and
``load_run(...).measure``; files and configs written before they had nodes still read."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml
from support import launch, results_under
from support.wandb_records import read_wandb_runs

from downsample_study import load_run
from downsample_study.config.store import typed_config
from downsample_study.errors import ConfigError
from downsample_study.evaluations.base import Measured
from downsample_study.evaluations.configs import (
    EVALUATIONS,
    EvaluationSettings,
    current_evaluation,
    evaluation_schema,
)
from downsample_study.results import Results

ON_BY_DEFAULT = {"shift", "feature_maps"}
# each evaluation switched on, sized for a few seconds on 200 test images of 28×28
EVERY = ["evaluation.shift_grid.enabled=true", "evaluation.shift_grid.radius=2",
         "evaluation.shift_grid.images=50",
         "evaluation.equivariance.enabled=true", "evaluation.equivariance.images=4",
         "evaluation.equivariance.max=2",
         "evaluation.aliasing.enabled=true", "evaluation.aliasing.images=4",
         "evaluation.corruptions.enabled=true", "evaluation.corruptions.images=20",
         "evaluation.corruptions.severities=[1,5]",
         "evaluation.attacks.enabled=true", "evaluation.attacks.images=20",
         "evaluation.attacks.pgd_steps=2",
         "evaluation.cost.enabled=true", "evaluation.cost.repeats=2",
         "evaluation.cost.warmup=0", "evaluation.cost.batch_sizes=[1,8]"]


def test_every_registered_evaluation_has_a_node_that_switches_it():
    settings = evaluation_schema()()
    names = [f.name for f in dataclasses.fields(settings)]
    assert names == EVALUATIONS.names()
    for name in names:
        node = getattr(settings, name)
        assert isinstance(node, EvaluationSettings)
        assert node.enabled == (name in ON_BY_DEFAULT), name
        assert callable(EVALUATIONS[name])  # a builder registers for each schema


@pytest.mark.parametrize(("preset", "enabled"), [("all", True), ("none", False)])
def test_the_presets_switch_every_registered_evaluation(preset, enabled):
    from downsample_study.config.store import CONFIG_DIR

    node = yaml.safe_load((CONFIG_DIR / "evaluation" / f"{preset}.yaml").read_text())
    assert node == {name: {"enabled": enabled} for name in EVALUATIONS.names()}


def test_the_evaluation_node_pickles_for_a_process_ddp_spawns():
    import pickle

    settings = evaluation_schema()()
    settings.shift_grid.enabled, settings.shift_grid.radius = True, 2
    again = pickle.loads(pickle.dumps(settings))
    assert again == settings and type(again) is type(settings)


def test_a_results_file_of_schema_7_reads_its_shift_as_the_shift_evaluation():
    shift = {"max_shift": 3, "samples": 1, "seed": 0, "regime": {"stride": 4, "invariant": False},
             "zero": {"acc_top1": 0.9, "consistency": 0.8},
             "circular": {"acc_top1": 0.7, "consistency": 0.6}}
    results = Results.from_dict({"status": "completed", "config": {}, "schema_version": 7,
                                 "shift": shift})
    entry = results.evaluations["shift"]
    assert entry["summary"] == {"acc_zero": 0.9, "consistency_zero": 0.8, "acc_circular": 0.7,
                                "consistency_circular": 0.6}
    assert entry["details"]["max"] == 3 and entry["details"]["regime"] == shift["regime"]
    empty = Results.from_dict({"status": "completed", "config": {}, "schema_version": 7,
                               "shift": None})
    assert empty.evaluations == {}


@pytest.mark.parametrize(("flat", "expected"), [
    ({"shift": False, "shift_max": 2, "feature_maps": True, "feature_map_images": 3},
     {"shift": {"enabled": False, "max": 2}, "feature_maps": {"enabled": True, "images": 3}}),
    ({"shift_modes": ["circular"], "shift_samples": 2, "shift_seed": 5,
      "feature_map_channels": 2},
     {"shift": {"modes": ["circular"], "samples": 2, "seed": 5},
      "feature_maps": {"channels": 2}}),
    ({"shift": {"max": 1}, "attacks": {"enabled": True}},
     {"shift": {"max": 1}, "attacks": {"enabled": True}}),
])
def test_an_evaluation_node_of_before_is_read_as_it_is_written_now(flat, expected):
    assert current_evaluation(flat) == expected
    typed = typed_config({"evaluation": flat})
    for name, options in expected.items():
        for key, value in options.items():
            assert typed.evaluation[name][key] == value, (name, key)


@dataclasses.dataclass
class MeanLogitConfig(EvaluationSettings):
    """A plug-in's schema: on by default, with an option of its own."""

    enabled: bool = True
    scale: float = 1.0


@torch.inference_mode()
def mean_logit(net, data, cfg: MeanLogitConfig) -> Measured:
    x, _ = next(iter(data.batches()))
    return Measured({"mean": cfg.scale * float(net(x).mean())}, {"images": len(x)})


def test_an_evaluation_registered_outside_the_package_runs_through_the_command_line(
    monkeypatch, quick, tmp_path, capsys
):
    monkeypatch.setattr(EVALUATIONS, "builders", dict(EVALUATIONS.builders))
    monkeypatch.setattr(EVALUATIONS, "schemas", dict(EVALUATIONS.schemas))
    EVALUATIONS.add("mean_logit", mean_logit, MeanLogitConfig)
    bad = launch([*quick, "evaluation.mean_logit.scael=2", "hydra.run.dir=bad"], capsys)
    assert bad.exit_code == 1 and "evaluation.mean_logit.scael: no such key" in bad.output
    run = launch([*quick, "logger=none", "evaluation.mean_logit.scale=2",
                  "evaluation.feature_maps.enabled=false", "hydra.run.dir=out"], capsys)
    assert run.exit_code == 0, run.output[-2000:]
    [results] = results_under(tmp_path / "out")
    entry = results["evaluations"]["mean_logit"]
    assert entry["details"] == {"images": 128} and entry["summary"]["mean"] != 0
    assert results["config"]["evaluation"]["mean_logit"] == {"enabled": True, "scale": 2.0}


@pytest.fixture(scope="module")
def every_evaluation(tmp_path_factory, data_dir):
    """One job with every evaluation switched on, logged to W&B offline."""
    root = tmp_path_factory.mktemp("every")
    (root / "home").mkdir()
    with pytest.MonkeyPatch.context() as patch:  # hermetic's, for a fixture of the module
        for var in ("WANDB_API_KEY", "WANDB_BASE_URL", "DATA_DIR", "XDG_CACHE_HOME"):
            patch.delenv(var, raising=False)
        patch.setenv("HOME", str(root / "home"))
        patch.setenv("WANDB_SILENT", "true")
        patch.chdir(root)
        run = launch([f"paths.data_dir={data_dir}", f"paths.cache_dir={root / 'cache'}",
                      "dataset.val_size=100", "dataset.eval_batch_size=128",
                      "dataset.verify_checksums=false", "trainer.max_epochs=1",
                      "trainer.limit_train_batches=5", "accelerator=cpu", "logger=wandb",
                      *EVERY, f"hydra.run.dir={root / 'out'}"])
    assert run.exit_code == 0
    return root / "out"


def test_a_job_records_every_evaluation_it_ran_with_its_time(every_evaluation):
    [results] = results_under(every_evaluation)
    assert results["schema_version"] == 8
    assert set(results["evaluations"]) == set(EVALUATIONS.names())
    for name, entry in results["evaluations"].items():
        assert set(entry) == {"summary", "details", "seconds"}, name
        assert entry["seconds"] > 0
        assert all(isinstance(v, float | int) for v in entry["summary"].values()), name
    assert results["evaluations"]["attacks"]["summary"]["clean"] == pytest.approx(
        1 - results["evaluations"]["corruptions"]["summary"]["clean_error"], abs=0.2)


def test_a_jobs_figures_are_saved_beside_its_results_and_logged(every_evaluation):
    pngs = {p.name for p in every_evaluation.glob("*.png")}
    assert {"feature_maps.png", "shift_grid_heatmap.png", "attacks_accuracy.png"} <= pngs
    [run] = read_wandb_runs(every_evaluation)
    logged = {k for row in run.history for k in row}
    assert {"feature_maps", "shift_grid_heatmap", "attacks_accuracy"} <= logged
    [results] = results_under(every_evaluation)
    for name, entry in results["evaluations"].items():
        for key, value in entry["summary"].items():
            assert run.summary[f"test/{name}_{key}"] == pytest.approx(value), (name, key)


def test_mode_eval_runs_an_evaluation_the_job_did_not(every_evaluation, data_dir, tmp_path):
    run = launch(["mode=eval", f"checkpoint={every_evaluation}", f"paths.data_dir={data_dir}",
                  f"paths.cache_dir={tmp_path / 'cache'}", "evaluation.shift.enabled=false",
                  "evaluation.feature_maps.enabled=false", "evaluation.shift_grid.enabled=true",
                  "evaluation.shift_grid.radius=1", "evaluation.shift_grid.images=30",
                  "hydra.run.dir=again"])
    assert run.exit_code == 0
    again = json.loads((tmp_path / "again" / "evaluation.json").read_text())
    assert set(again["evaluations"]) == {"shift_grid"}
    grid = again["evaluations"]["shift_grid"]["details"]
    assert grid["radius"] == 1 and len(grid["circular"]["accuracy"]) == 3
    assert (tmp_path / "again" / "shift_grid_heatmap.png").is_file()


def test_load_run_measures_one_evaluation_with_options(every_evaluation, data_dir):
    run = load_run(every_evaluation)
    measured = run.measure("shift_grid", data_dir=data_dir, radius=1, images=30)
    recorded = run.results.evaluations["shift_grid"]["details"]
    assert measured.details["radius"] == 1
    # the centre of the grid is the unshifted image: the same prediction at any radius
    centre = measured.details["circular"]["accuracy"][1][1]
    assert centre == pytest.approx(
        load_run(every_evaluation).measure("shift_grid", data_dir=data_dir, radius=1,
                                           images=30).details["circular"]["accuracy"][1][1])
    assert recorded["radius"] == 2


@pytest.mark.parametrize(("name", "options", "words"), [
    ("shift_gird", {}, ["evaluation.name: unknown evaluation 'shift_gird'", "shift_grid"]),
    ("shift_grid", {"radius": 0}, ["evaluation.shift_grid.radius: must be >= 1"]),
    ("shift_grid", {"raduis": 2}, ["evaluation.shift_grid.raduis", "radius"]),
    ("attacks", {"epsilons": [2.0]}, ["evaluation.attacks.epsilons: budgets in (0, 1]"]),
])
def test_load_run_refuses_a_bad_evaluation_in_one_line(every_evaluation, name, options, words):
    with pytest.raises(ConfigError) as caught:
        load_run(every_evaluation).measure(name, **options)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
