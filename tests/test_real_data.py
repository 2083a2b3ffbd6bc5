"""The real MNIST in ../shared/data (gzipped, read-only): skipped where it is absent."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA, launch, results_under


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED_DATA / "MNIST").is_dir(), reason=f"no {SHARED_DATA}/MNIST")
def test_one_epoch_of_lenet5_maxpool_on_real_mnist_reaches_97_percent(tmp_path):
    run = launch([f"paths.data_dir={SHARED_DATA}", f"paths.cache_dir={tmp_path / 'cache'}",
                  "trainer.max_epochs=1", "accelerator=cpu", "logger=none",
                  "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["params"]["total"] == 61_706
    assert results["test"]["acc_top1"] >= 0.97
