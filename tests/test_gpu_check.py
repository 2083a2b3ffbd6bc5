"""The GPU path: the tests that need a CUDA device (marked ``cuda``, skipped without one;
``scripts/gpu_check.sh`` runs them on the lent GPU machine), and that script's rehearsal on
CPU, every step at its smallest."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from support import launch, results_under

from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config
from downsample_study.nets.packed import PackedNet, member_losses, stack_members

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_job_trains_on_the_gpu_with_its_data_there(quick, precision, tmp_path):
    args = [*quick, "accelerator=gpu", "logger=none", f"trainer.precision={precision}",
            "hydra.run.dir=out"]
    assert launch(args).exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed" and results["resources"]["device"].startswith("cuda")
    assert results["test"]["acc_top1"] > 0.5


@pytest.mark.cuda
@cuda
def test_a_packed_sweep_with_dropout_trains_on_the_gpu(quick, tmp_path):
    """Each member draws its masks from a generator of its own, which must live on the GPU."""
    args = ["-m", *quick, "accelerator=gpu", "logger=none", "hydra/sweeper=packed", "seed=0,1",
            "downsample.dropout=0.3", "hydra.sweep.dir=sweep"]
    assert launch(args).exit_code == 0
    assert [r["status"] for r in results_under(tmp_path / "sweep")] == ["completed"] * 2


@pytest.fixture
def without_tf32():
    """cuDNN convolutions run in TF32 by default: ~1e-3 apart, outside a pack's tolerance."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize(("operator", "members"), [
    ("maxpool", 3), ("stride2", 3), ("blurpool", 3), ("aps", 3), ("maxpool", 64),
])
def test_a_pack_on_the_gpu_steps_as_its_members_alone(operator, members, without_tf32):
    """The first step's losses and gradients, on CUDA in fp32, up to a pack of 64 (dropout
    off: CUDA's solo dropout is a fused kernel, the pack's draws per member)."""
    device, nets = torch.device("cuda"), []
    for seed in range(members):
        L.seed_everything(seed, verbose=False)
        nets.append(build_model(model_config("lenet5"), downsample_config(
            operator, batch_norm=True), (1, 28, 28), 10).to(device))
    packed = PackedNet([copy.deepcopy(n) for n in nets], [torch.Generator(device)] * members)
    images = [torch.randn(16, 1, 28, 28, device=device) for _ in nets]
    labels = [torch.randint(0, 10, (16,), device=device) for _ in nets]
    member_losses(packed(stack_members(images)), torch.stack(labels, 1)).sum().backward()
    grads = dict(packed.body.named_parameters())
    for k, (net, x, y) in enumerate(zip(nets, images, labels, strict=True)):
        F.cross_entropy(net(x), y).backward()
        for name, parameter in net.named_parameters():
            key, _ = packed.locate(name, k)
            torch.testing.assert_close(packed.member_tensor(name, grads[key].grad, k),
                                       parameter.grad, atol=1e-4, rtol=1e-3)


rehearsal = pytest.mark.skipif(not os.environ.get("GPU_CHECK_REHEARSAL"),
                               reason="2 min: CI runs it in a step of its own (make gpu-rehearsal)")


def _rehearse(data_dir: Path, tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DEVICE": "cpu",
           "GPU_CHECK_QUICK": "1", "DATA_DIR": str(data_dir), "OUT": str(tmp_path / "out"),
           "GPU_CHECK_WORK": str(tmp_path / "work"), "GPU_CHECK_SECONDS": "900", **settings}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=900)


def _steps(run: subprocess.CompletedProcess) -> dict[str, str]:
    return {line.split(":")[0].removeprefix("step "): line
            for line in run.stdout.splitlines() if line.startswith("step ")}


@pytest.mark.slow
@rehearsal
def test_the_gpu_check_rehearses_every_step_on_cpu(data_dir, tmp_path):
    run = _rehearse(data_dir, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    steps = _steps(run)
    assert list(steps) == ["versions", "tests", "preset", "bench", "ddp", "cifar",
                           "sweep_parallel", "sweep_sequential", "bench_compiled"]
    assert all(": ok (" in line for line in steps.values())
    assert all(f"{row}/framework@16 = " in steps["bench"] for row in
               ("framework[bf16]", "framework[channels_last]"))
    assert "packed/sequential@K=2" in steps["bench"]
    assert "framework[compiled]/framework@16 = " in steps["bench_compiled"]
    assert "8 jobs with results, 8 completed" in steps["preset"]  # 4 variants, 2 seeds
    assert "wall time of the preset" in steps["preset"]
    assert "lenet5+maxpool" in steps["preset"].split("vs the CPU study")[1]
    assert "4 jobs with results, 4 completed" in steps["sweep_parallel"]
    assert all("test, on the checkpoint" in steps[name] for name in ("ddp", "cifar"))
    # what comes back from the device: at most 8 plain-named files, none in a folder
    out = tmp_path / "out"
    assert sorted(p.name for p in out.rglob("*")) == ["runs.tar.gz", "steps.log", "summary.txt"]
    assert (out / "summary.txt").read_text() == run.stdout
    assert all(f"==== step {name}: exit 0" in (out / "steps.log").read_text() for name in steps)
    with tarfile.open(out / "runs.tar.gz") as runs:
        names = runs.getnames()
    assert sum(name.endswith("/results.json") for name in names) == 8 + 4 + 4 + 2
    assert not [name for name in names if name.endswith(".ckpt") or "cifar/data" in name]


@pytest.mark.slow
@rehearsal
def test_the_named_steps_run_alone_each_within_the_checks_time(data_dir, tmp_path):
    run = _rehearse(data_dir, tmp_path, GPU_CHECK_STEPS="bench_compiled versions",
                    GPU_CHECK_SECONDS="30", TORCHINDUCTOR_FORCE_DISABLE_CACHES="1")
    assert run.returncode == 1
    steps = _steps(run)
    assert list(steps) == ["versions", "bench_compiled"]  # in the check's order
    assert ": ok (" in steps["versions"]
    # its 150 s cut to what is left of the 30 (compiling anew on CPU takes longer)
    assert "TIMED OUT after " in steps["bench_compiled"]
    log = (tmp_path / "out" / "steps.log").read_text()
    assert re.search(r"==== step bench_compiled: exit (124|137), ", log)  # SIGTERM, or SIGKILL
    late = _rehearse(data_dir, tmp_path / "late", GPU_CHECK_STEPS="cifar", GPU_CHECK_SECONDS="15")
    assert late.returncode == 1
    assert _steps(late) == {"cifar": "step cifar: NOT RUN, the check's 15 s are spent"}


@pytest.mark.slow
@rehearsal
def test_a_step_run_again_starts_over(data_dir, tmp_path):
    for _ in range(2):  # the same machine, a second call
        run = _rehearse(data_dir, tmp_path, GPU_CHECK_STEPS="cifar")
        assert run.returncode == 0 and ": ok (" in _steps(run)["cifar"]
    log = (tmp_path / "out" / "steps.log").read_text()
    assert log.count("==== step cifar: exit 0") == 2
    assert "completed by an earlier run" not in log


@pytest.mark.parametrize("steps", ["seed000", "versions seed000"])
def test_a_step_the_check_does_not_have_is_one_line_and_exit_2(steps, tmp_path):
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "GPU_CHECK_STEPS": steps, "OUT": str(tmp_path),
                              "GPU_CHECK_WORK": str(tmp_path / "work")})
    assert run.returncode == 2 and not run.stderr
    assert run.stdout.startswith("GPU_CHECK_STEPS: no step seed000 (steps: install versions")
    assert not (tmp_path / "summary.txt").exists()  # nothing ran
