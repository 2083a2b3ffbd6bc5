"""Every touch of a library's internals (``downsample_study/internals.py``): each test fails
when the internal it relies on no longer applies to the installed version, so an upgrade that
moves it is noticed (the run itself goes on without it). The exit without the interpreter's
teardown is checked end to end in test_train.py (exit status, complete W&B run)."""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys

import pytest
from lightning import Trainer
from lightning.pytorch.loggers import WandbLogger

from downsample_study import internals
from downsample_study.sweeps.launchers import fork_workers


def test_lightning_still_sets_the_nvml_check_that_the_probe_fix_answers():
    code = "import os, lightning; print(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'))"
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip() == "1"


def test_the_nvml_probe_is_kept_only_where_nvml_loads(monkeypatch):
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    internals.skip_unloadable_nvml_probe()
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        loads = True
    except OSError:
        loads = False
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == ("1" if loads else "0")


def test_wandb_logger_still_passes_the_anonymous_setting(tmp_path):
    logger = WandbLogger(save_dir=str(tmp_path), mode="offline")
    assert "anonymous" in logger._wandb_init  # what the touch removes
    internals.drop_wandb_anonymous_setting(logger)
    assert "anonymous" not in logger._wandb_init


@pytest.mark.parametrize(("strategy", "relaunches"), [("ddp", True), ("ddp_spawn", False)])
def test_plain_ddp_is_told_apart_by_its_launcher(strategy, relaunches):
    trainer = Trainer(accelerator="cpu", devices=2, strategy=strategy, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False)
    assert internals.relaunches_command_line(trainer.strategy) is relaunches


@pytest.mark.parametrize("cuda_initialized", [False, True])
def test_parallel_workers_are_forks_unless_cuda_is_initialised(cuda_initialized, monkeypatch):
    from joblib.externals.loky.backend import context

    monkeypatch.setattr("torch.cuda.is_initialized", lambda: cuda_initialized)
    try:
        assert fork_workers() == (sys.platform == "linux" and not cuda_initialized)
        expected = "fork" if fork_workers() else "loky"
        assert context.get_context().get_start_method() == expected
    finally:
        context.set_start_method(None, force=True)


def test_hydras_basic_sweeper_still_expands_a_sweep():
    jobs = internals.basic_sweep_jobs(["seed=0,1", "downsample=maxpool,avgpool", "model=lenet5"])
    assert sorted(map(sorted, jobs)) == sorted(
        sorted([f"seed={s}", f"downsample={d}", "model=lenet5"])
        for s in (0, 1) for d in ("maxpool", "avgpool")
    )


def test_a_moved_internal_is_reported_once_at_debug_level_and_skipped(monkeypatch, caplog):
    # as if Lightning had moved its launcher module
    monkeypatch.setitem(sys.modules, "lightning.pytorch.strategies.launchers.subprocess_script",
                        None)
    monkeypatch.setattr(internals, "_reported", set())
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    with caplog.at_level(logging.DEBUG, logger="downsample_study.internals"):
        assert internals.relaunches_command_line(trainer.strategy) is None
        assert internals.relaunches_command_line(trainer.strategy) is None
    [record] = [r for r in caplog.records if r.name == "downsample_study.internals"]
    assert record.levelno == logging.DEBUG and "ddp relaunch check" in record.getMessage()


def test_wandb_init_still_imports_the_launch_inputs_module(tmp_path):
    code = (f"import sys, wandb\n"
            f"before = {internals.WANDB_LAUNCH_INPUTS!r} in sys.modules\n"
            f"run = wandb.init(mode='offline', dir={str(tmp_path)!r})\n"
            f"print(before, {internals.WANDB_LAUNCH_INPUTS!r} in sys.modules)\n"
            f"run.finish()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "WANDB_SILENT": "true"}, check=True)
    assert out.stdout.split() == ["False", "True"]  # wandb.init imports it: worth importing early


def test_hydras_repository_copies_still_copy_the_config_store(monkeypatch):
    """Hydra 1.3 keeps the ConfigStore on its structured config source, so each copy of its
    config repository copies every stored schema; the touch makes copies share it."""
    import copy

    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # registers the config sources
    search_path = ConfigSearchPathImpl()
    search_path.append("schema", "structured://")
    repository = ConfigRepository(search_path)
    monkeypatch.delattr(ConfigStore, "__deepcopy__", raising=False)
    copied = copy.deepcopy(repository).get_schema_source()
    assert copied.store is not ConfigStore.instance()  # what the touch stops
    internals.share_config_store_in_copies()
    assert copy.deepcopy(repository).get_schema_source().store is ConfigStore.instance()


def test_hydra_still_sets_a_job_up_in_run_job_from_its_config():
    from hydra.core.utils import run_job

    assert "config" in run_job.__code__.co_varnames


def test_the_job_being_set_up_is_read_off_the_failure():
    import hydra.core.utils as hydra_utils

    def run_job(config):
        raise OSError(28, "No space left on device")

    original = hydra_utils.run_job
    hydra_utils.run_job = run_job  # a job's set-up that fails in its folder
    try:
        with pytest.raises(OSError) as failed:
            run_job({"hydra": {"sweep": {"dir": "/sweeps"}}})
        assert internals.job_set_up(failed.value) == {"hydra": {"sweep": {"dir": "/sweeps"}}}
    finally:
        hydra_utils.run_job = original


def test_hydras_basic_sweeper_still_expands_a_glob_with_a_config_loader():
    from downsample_study.config.store import config_loader

    jobs = internals.basic_sweep_jobs(["downsample=glob(a*,exclude=asap)", "seed=0"],
                                      config_loader())
    assert sorted(map(sorted, jobs)) == [["downsample=aps", "seed=0"],
                                         ["downsample=avgpool", "seed=0"]]


def test_torch_fft_still_calls_the_aten_ops_the_flop_formulas_name():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from downsample_study.internals import fft_flop_formulas

    formulas = fft_flop_formulas()
    assert len(formulas) == 3
    # 2 maps of 8×8: 64-point transforms, log2(64) = 6; complex 5·N·log2(N), real 2.5·N·log2(N)
    for transform, x, flops in ((torch.fft.fft2, torch.randn(2, 8, 8, dtype=torch.complex64),
                                 5 * 128 * 6),
                                (torch.fft.rfft2, torch.randn(2, 8, 8), 2.5 * 128 * 6)):
        counter = FlopCounterMode(display=False, custom_mapping=formulas)
        with counter:
            transform(x)
        assert counter.get_total_flops() == flops


def test_fractional_max_pooling_still_takes_fixed_region_draws():
    import torch
    import torch.nn.functional as F

    from downsample_study.internals import fractional_max_pool_fixed

    x = torch.randn(2, 3, 9, 9)
    fixed = fractional_max_pool_fixed(x, 2, (4, 4), 0.5)
    drawn = F.fractional_max_pool2d(x, 2, output_size=(4, 4),
                                    _random_samples=torch.full((2, 3, 2), 0.5))
    assert torch.equal(fixed, drawn)  # the private argument, not the seeded fallback
