"""Learning-rate schedules (``optimizer.scheduler``): torch's own, solo and in a pack alike."""

from __future__ import annotations

import pytest
import torch
from support import launch, results_under

from downsample_study.job.finished import load_run


def _last(folder) -> dict:
    [checkpoint] = folder.glob("**/checkpoints/last.ckpt")
    return torch.load(checkpoint, map_location="cpu", weights_only=True)


def _rate(checkpoint: dict) -> float:
    return checkpoint["optimizer_states"][0]["param_groups"][0]["lr"]


def _one_cycle(peak: float, steps: int) -> float:
    """The rate torch's OneCycleLR (30 % warm-up) gives after ``steps`` of ``steps``."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, peak, total_steps=steps,
                                                    pct_start=0.3)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    return optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize(("schedule", "expected"), [
    (["optimizer.scheduler.name=none"], lambda steps: 1e-3),
    # at its last step, cosine annealing has reached min_lr
    (["optimizer.scheduler.name=cosine", "optimizer.scheduler.min_lr=1e-5"], lambda s: 1e-5),
    # two epochs at step_size 1: decayed twice
    (["optimizer.scheduler.name=step", "optimizer.scheduler.step_size=1",
      "optimizer.scheduler.gamma=0.5"], lambda steps: 1e-3 * 0.25),
    # decayed after epoch 1 alone, not after epoch 3, which two epochs never reach
    (["optimizer.scheduler.name=multistep", "optimizer.scheduler.milestones=[1,3]",
      "optimizer.scheduler.gamma=0.5"], lambda steps: 1e-3 * 0.5),
    (["optimizer.scheduler.name=onecycle"], lambda steps: _one_cycle(1e-3, steps)),
])
def test_a_schedule_moves_the_rate_as_torchs_scheduler_does(schedule, expected, quick,
                                                            tmp_path):
    run = launch([*quick, "logger=none", "trainer.max_epochs=2", "optimizer.lr=1e-3",
                  "trainer.limit_train_batches=5", *schedule, "hydra.run.dir=out"])
    assert run.exit_code == 0, run.output
    checkpoint = _last(tmp_path / "out")
    assert _rate(checkpoint) == pytest.approx(expected(10), rel=1e-6)
    assert bool(checkpoint["lr_schedulers"]) == (schedule[0] != "optimizer.scheduler.name=none")


def test_a_packs_members_follow_the_schedule_their_solo_jobs_do(quick, tmp_path):
    sweep = ["-m", *quick, "logger=none", "trainer.max_epochs=2", "seed=0,1",
             "trainer.limit_train_batches=5", "optimizer.scheduler.name=cosine",
             "evaluation.shift.enabled=false", "evaluation.feature_maps.enabled=false"]
    assert launch([*sweep, "hydra/sweeper=packed", "hydra.sweep.dir=packed"]).exit_code == 0
    assert launch([*sweep, "hydra.sweep.dir=solo"]).exit_code == 0
    packed = {r["config"]["seed"]: r for r in results_under(tmp_path / "packed")}
    solo = {r["config"]["seed"]: r for r in results_under(tmp_path / "solo")}
    for seed, alone in solo.items():
        assert packed[seed]["pack"] and packed[seed]["test"]["acc_top1"] == \
            alone["test"]["acc_top1"]
        [member] = (tmp_path / "packed").glob(f"*seed={seed}*")
        [single] = (tmp_path / "solo").glob(f"*seed={seed}*")
        mine, theirs = _last(member), _last(single)
        assert mine["lr_schedulers"] == theirs["lr_schedulers"]  # a member resumes as solo
        assert _rate(mine) == pytest.approx(_rate(theirs))
    run = load_run(next((tmp_path / "packed").glob("*seed=0*")))
    assert run.config.optimizer.scheduler.name == "cosine"


@pytest.mark.parametrize(("override", "message"), [
    ("optimizer.scheduler.name=linear", "optimizer.scheduler.name"),
    ("optimizer.scheduler.warmup=1.5", "optimizer.scheduler.warmup: a probability in [0, 1)"),
    ("optimizer.scheduler.step_size=0", "optimizer.scheduler.step_size: must be >= 1, got 0"),
    ("optimizer.scheduler.gamma=0", "optimizer.scheduler.gamma: must be > 0, got 0"),
    ("optimizer.scheduler.name=multistep", "optimizer.scheduler.milestones: empty"),
    ("optimizer.scheduler.milestones=[3,2]", "optimizer.scheduler.milestones: [3, 2]; epochs"),
    ("optimizer.scheduler.milestones=[0]", "optimizer.scheduler.milestones: [0]; epochs"),
])
def test_a_schedule_that_makes_no_sense_is_one_line(override, message, quick, capsys):
    run = launch([*quick, override], capsys)
    assert run.exit_code == 1 and message in run.output and "Traceback" not in run.output
