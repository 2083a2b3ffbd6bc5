"""The real MNIST (gzipped, read-only) where REAL_DATA_DIR points (CI: ../shared/data);
skipped where it is not set or holds no MNIST."""

from __future__ import annotations

import pytest
from support import REAL_DATA, launch, results_under


@pytest.mark.real_data
@pytest.mark.skipif(REAL_DATA is None or not (REAL_DATA / "MNIST").is_dir(),
                    reason=f"REAL_DATA_DIR={REAL_DATA} holds no MNIST")
def test_one_epoch_of_lenet5_maxpool_on_real_mnist_reaches_97_percent(tmp_path):
    run = launch([f"paths.data_dir={REAL_DATA}", f"paths.cache_dir={tmp_path / 'cache'}",
                  "trainer.max_epochs=1", "accelerator=cpu", "logger=none",
                  "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["params"]["total"] == 61_706
    assert results["test"]["acc_top1"] >= 0.97
