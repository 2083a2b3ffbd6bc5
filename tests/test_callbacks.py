"""Lightning callbacks by choice (``callbacks=[...]``): built from their ``_target_``, added to
the framework's own in a solo job, refused with the reason in a pack."""

from __future__ import annotations

import pytest
from support import launch, results_under


def test_early_stopping_ends_training_once_validation_stops_rising(quick, tmp_path):
    run = launch([*quick, "logger=none", "callbacks=[early_stopping]", "trainer.max_epochs=12",
                  "callbacks.early_stopping.patience=1", "hydra.run.dir=out"])
    assert run.exit_code == 0, run.output
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed" and results["epochs"] < 12
    assert results["config"]["callbacks"]["early_stopping"]["patience"] == 1


def test_weight_averaging_trains_to_a_completed_job(quick, tmp_path):
    run = launch([*quick, "logger=none", "callbacks=[swa]", "trainer.max_epochs=2",
                  "hydra.run.dir=out"])
    assert run.exit_code == 0, run.output
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed" and results["test"]["acc_top1"] > 0.5


def test_a_pack_refuses_callbacks_with_the_reason(quick, capsys):
    run = launch(["-m", *quick, "logger=none", "callbacks=[early_stopping]", "seed=0,1",
                  "hydra/sweeper=packed", "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert "callbacks.early_stopping: Lightning's callbacks see a pack as one network" in \
        run.output


@pytest.mark.parametrize(("overrides", "message"), [
    (["+callbacks.mine._target_=lightning.pytorch.callbacks.NoSuchCallback"],
     "callbacks.mine: cannot build lightning.pytorch.callbacks.NoSuchCallback: "),
    (["+callbacks.mine._target_=collections.OrderedDict"],
     "callbacks.mine: collections.OrderedDict is not a Lightning callback"),
    (["+callbacks.mine.patience=3"], "callbacks.mine: no _target_"),
    (["+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor"],
     "callbacks.lr: each member logs the learning rate already, as train/lr"),
    (["callbacks=[early_stopping]", "+callbacks.early_stopping.bogus=1"],
     "callbacks.early_stopping: cannot build lightning.pytorch.callbacks.EarlyStopping: "),
])
def test_a_callback_that_cannot_be_built_is_one_line(overrides, message, quick, capsys):
    run = launch([*quick, "logger=none", *overrides], capsys)
    assert run.exit_code == 1 and message in run.output and "Traceback" not in run.output
