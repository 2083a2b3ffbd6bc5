"""The GPU path: the tests that need a CUDA device (marked ``cuda``, skipped without one;
``scripts/gpu_check.sh`` runs them on the lent GPU machine), and that script's rehearsal on
CPU, every step at its smallest."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
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
@pytest.mark.parametrize("operator", ["maxpool", "stride2", "blurpool", "aps"])
def test_a_pack_on_the_gpu_steps_as_its_members_alone(operator, without_tf32):
    """The first step's losses and gradients, on CUDA in fp32 (dropout off: CUDA's solo
    dropout is a fused kernel, the pack's draws per member)."""
    device, nets = torch.device("cuda"), []
    for seed in range(3):
        L.seed_everything(seed, verbose=False)
        nets.append(build_model(model_config("lenet5"), downsample_config(
            operator, batch_norm=True), (1, 28, 28), 10).to(device))
    packed = PackedNet([copy.deepcopy(n) for n in nets], [torch.Generator(device)] * 3)
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


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("GPU_CHECK_REHEARSAL"),
                    reason="45 s: CI runs it in a step of its own (make gpu-rehearsal)")
def test_the_gpu_check_rehearses_every_step_on_cpu(data_dir, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DEVICE": "cpu",
           "GPU_CHECK_QUICK": "1", "DATA_DIR": str(data_dir), "OUT": str(tmp_path / "out")}
    run = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                         timeout=600)
    lines = run.stdout.splitlines()
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    steps = {line.split(":")[0].removeprefix("step "): line for line in lines}
    assert list(steps) == ["versions", "tests", "bench", "seed000", "sweep_sequential",
                           "sweep_parallel"]
    assert all(": ok (" in line for line in lines)
    assert "packed/sequential@K=2" in steps["bench"] and "framework/" in steps["bench"]
    assert "test, on the checkpoint" in steps["seed000"]
    assert "2 jobs with results, 2 completed" in steps["sweep_parallel"]
    assert (tmp_path / "out" / "bench.log").is_file()  # every step's output is kept
