"""What makes two runs the same job, marked once on the schemas (config/defining.py): a key
marked incidental neither splits a variant, nor blocks a skip or a resume, nor names a job
folder; a defining key does all three."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from downsample_study import compose
from downsample_study.config.defining import defining
from downsample_study.config.hydra_versions import VERSION_BASE
from downsample_study.config.store import CONFIG_DIR, register_configs
from downsample_study.errors import OtherJobError
from downsample_study.layout import RESULTS_FILE
from downsample_study.report.build import build_report
from downsample_study.runtime.same_job import SameJob, completed_results

INCIDENTAL = [("optimizer.fused", "false"), ("trainer.deterministic", "true"),
              ("trainer.num_sanity_val_steps", "2"), ("dataset.eval_batch_size", "50"),
              ("speed.channels_last", "false"), ("logger", "csv"), ("accelerator", "cpu")]
DEFINING = [("optimizer.weight_decay", "0.01"), ("dataset.batch_size", "32"),
            ("trainer.gradient_clip_val", "0.5"), ("downsample.dropout", "0.1"),
            ("evaluation.shift.max", "2")]
CASES = [(*case, False) for case in INCIDENTAL] + [(*case, True) for case in DEFINING]


def _config(*overrides: str) -> dict:
    return OmegaConf.to_container(compose(["logger=none", *overrides]), resolve=True,
                                  enum_to_str=True)


def _write(folder, config: dict, seed: int, top1: float) -> None:
    folder.mkdir(parents=True)
    metrics = {"acc_top1": top1, "acc_top2": 0.99, "loss": 0.1}
    (folder / RESULTS_FILE).write_text(json.dumps({
        "status": "completed", "config": {**config, "seed": seed}, "val": metrics,
        "test": metrics, "params": {"total": 1, "trainable": 1, "downsample": 0},
        "best_epoch": 1, "epochs": 1}))


@pytest.mark.parametrize(("key", "value", "defines"), CASES)
def test_a_key_splits_a_variant_only_if_it_defines_the_job(key, value, defines, tmp_path):
    plain, other = _config(), _config(f"{key}={value}")
    assert (defining(plain) != defining(other)) is defines
    for seed, config in enumerate((plain, other, plain, other)):
        _write(tmp_path / "sweep" / f"job{seed}", config, seed, 0.9 + 0.01 * seed)
    report = build_report(tmp_path / "sweep")
    assert sorted(v.seeds for v in report.variants) == ([[0, 2], [1, 3]] if defines else
                                                          [[0, 1, 2, 3]])


@pytest.mark.parametrize(("key", "value", "defines"), CASES)
def test_a_key_blocks_a_skip_and_a_resume_only_if_it_defines_the_job(key, value, defines,
                                                                      tmp_path):
    earlier, now = _config(), _config(f"{key}={value}")
    _write(tmp_path / "job", earlier, 0, 0.9)
    checkpoint = SameJob(earlier, tmp_path / "job").state_dict()
    if defines:
        with pytest.raises(OtherJobError, match=key if "." in key else "trainer"):
            completed_results(tmp_path / "job", {**now, "seed": 0})
        with pytest.raises(OtherJobError, match="another configuration"):
            SameJob(now, tmp_path / "job").load_state_dict(checkpoint)
    else:
        assert completed_results(tmp_path / "job", {**now, "seed": 0}).completed
        SameJob(now, tmp_path / "job").load_state_dict(checkpoint)  # resumes


@pytest.mark.parametrize(("key", "value", "defines"), CASES)
def test_a_key_names_a_job_folder_only_if_it_defines_the_job(key, value, defines):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), **VERSION_BASE):
        cfg = hydra_compose("config", overrides=[f"{key}={value}", "seed=1"],
                            return_hydra_config=True)
    named = sorted([f"{key}={value}", "seed=1"] if defines else ["seed=1"])
    assert cfg.hydra.job.override_dirname == ",".join(named)


@pytest.mark.parametrize("betas", [(0.9, 0.999), [0.9, 0.999]])
def test_a_pair_held_as_a_tuple_is_the_list_results_json_holds(betas):
    """OmegaConf 2.4 keeps a tuple-typed default (optimizer.betas) a tuple; JSON has lists."""
    composed = {"optimizer": {"name": "adam", "lr": 1e-3, "betas": betas}}
    recorded = json.loads(json.dumps(composed))
    assert defining(composed) == defining(recorded)
    assert defining(composed)["optimizer.betas"] == [0.9, 0.999]
