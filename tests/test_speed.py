"""Fast paths and the benchmark: they must run and change nothing but speed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from support import launch, results_under

import benchmarks as bench
from downsample_study.config.hydra_versions import VERSION_BASE
from downsample_study.config.store import CONFIG_DIR, register_configs
from downsample_study.config.validate import validate
from downsample_study.training.speed import NoProfiler, use_channels_last
from downsample_study.training.trainer import trainer_args


def test_channels_last_trains_to_the_same_result_and_is_the_cpu_default(quick, tmp_path):
    layouts = {"nchw": ["speed.channels_last=false"], "nhwc": ["speed.channels_last=true"],
               "default": []}
    for name, extra in layouts.items():
        run = launch([*quick, "logger=none", "evaluation.feature_maps.enabled=false",
                      f"hydra.run.dir={name}", *extra])
        assert run.exit_code == 0
    results = {name: results_under(tmp_path / name)[0] for name in layouts}
    used = {name: result["resources"]["channels_last"] for name, result in results.items()}
    assert used == {"nchw": False, "nhwc": True, "default": True}  # these tests run on CPU
    plain, nhwc = results["nchw"]["test"], results["nhwc"]["test"]
    # NHWC kernels sum in another order: equal up to rounding, not bit for bit
    assert nhwc["acc_top1"] == pytest.approx(plain["acc_top1"], abs=0.02)
    assert nhwc["loss"] == pytest.approx(plain["loss"], rel=0.05)


@pytest.mark.parametrize(("setting", "device", "expected"), [
    (None, "cpu", True), (None, "cuda", False), (True, "cuda", True), (False, "cpu", False),
])
def test_channels_last_setting_per_device(setting, device, expected):
    assert use_channels_last(setting, torch.device(device)) is expected


def test_unknown_compile_mode_is_rejected(quick, capsys):
    run = launch([*quick, "speed.compile=fastest"], capsys)
    assert run.exit_code == 1
    assert "speed.compile" in run.output and "reduce-overhead" in run.output


@pytest.mark.slow
def test_benchmark_prints_the_ratio_lines(data_dir, tmp_path, capsys):
    bench.main(["--data-dir", str(data_dir), "--cache-dir", str(tmp_path / "cache"),
                "--dataset", "fashion_mnist", "--batch-sizes", "32", "--steps", "2",
                "--rounds", "1", "--startup-runs", "1", "--set", "dataset.val_size=100",
                "--variant", "nchw", "speed.channels_last=false", "--pack-sizes", "2",
                "--models", "lenet_gap:blurpool", "--model-steps", "1", "--model-pack", "2",
                "--study", "--study-seeds", "1", "--study-epochs", "1", "--study-batch", "32"])
    lines = capsys.readouterr().out.strip().splitlines()
    study = next(line for line in lines if line.startswith("study/plain_script = "))
    assert float(study.split()[2]) > 0
    assert re.search(r"framework [01]\.\d{4}, plain script [01]\.\d{4}", study)
    assert any(line.startswith("  framework[nchw] ") for line in lines)  # its row, and ratio:
    assert float(next(line for line in lines
                      if line.startswith("framework[nchw]/framework@32 = ")).split("=")[1]) > 0
    assert float(next(line for line in lines if line.startswith(
        "packed/sequential@K=2[lenet_gap+blurpool] = ")).rsplit("=", 1)[1]) > 0
    assert lines[-3].startswith("framework/tensor_loop_tuned = ")
    assert lines[-2].startswith("framework/tensor_loop = ")
    assert lines[-1].startswith("framework/dataloader_loop = ")
    assert float(lines[-1].split("=")[1]) > 0
    assert any(line.startswith("start-up to first training step:") for line in lines)


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], NoProfiler), (["trainer.profiler=simple"], str),
])
def test_no_profiling_costs_nothing_unless_a_profiler_is_chosen(overrides, expected):
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), **VERSION_BASE):
        cfg = validate(compose("config", overrides=overrides))
    profiler = trainer_args(cfg.trainer)["profiler"]
    assert isinstance(profiler, expected)
    if expected is NoProfiler:
        with profiler.profile("a hook") as action:  # what Lightning does around every hook
            assert action is None


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-sizes", "0"], "argument --batch-sizes: must be >= 1, got 0"),
    (["--steps", "x"], "argument --steps: 'x' is not a whole number"),
    (["--model", "nope"], "argument --model: invalid choice: 'nope'"),
    (["--set", "foo=1"], "--set: foo: no such key"),
    (["--set", "trainer.max_epochs=-1"], "trainer.max_epochs: must be >= 1, got -1"),
    (["--variant", "fast", "foo=1"], "--variant: foo: no such key"),
    (["--variant", "bf16", "trainer.precision=bf17"], "trainer.precision"),
    (["--study-seeds", "0"], "argument --study-seeds: must be >= 1, got 0"),
    (["--study-epochs", "x"], "argument --study-epochs: 'x' is not a whole number"),
    (["--study", "--dataset", "mnist"], "--study: the plain script trains on fashion_mnist"),
    (["--models", "resnet21"], "argument --models: no model 'resnet21' (models: "),
    (["--models", "resnet20:maxpol"], "argument --models: no operator 'maxpol' (operators: "),
    (["--model-pack", "1"], "argument --model-pack: must be >= 2, got 1"),
    (["--models", "convpool3:maxpool"],  # a CIFAR network on 28×28 images
     "--models convpool3:maxpool: layer 'conv3' (Conv2d(50, 50, kernel_size=(5, 5)"),
    (["--downsample", "blurpool", "--set", "downsample.filter_size=5", "--models",
      "resnet20:maxpool"], "--models resnet20:maxpool: downsample.filter_size: no such key"),
])
def test_bad_benchmark_input_is_one_line_and_exit_2_before_any_timing(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(args)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert not captured.out  # nothing measured, nothing printed as if it were


FAULTS = """
import resource, sys, torch
from downsample_study.training.speed import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "kept" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # 64 MiB, allocated, written and freed: the heap settles
    torch.ones(2**24)
before = faults()
for _ in range(5):
    torch.ones(2**24)
print(kept, faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_activations_stay_in_the_process_instead_of_faulting_in_again():
    """A pack's activations are MBs: glibc maps each afresh and the first write of every
    page faults, step after step, unless freed blocks are kept (a third of a CPU pack step)."""
    seen = {}
    for mode in ("default", "kept"):
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        seen[mode] = (out[0] == "True", int(out[1]))
    assert seen["kept"][0] and not seen["default"][0]
    assert seen["default"][1] > 5 * 2**24 * 4 // 4096 // 2  # at least half the pages, again
    assert seen["kept"][1] < 100
