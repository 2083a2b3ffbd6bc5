"""The real MNIST (gzipped, read-only) where REAL_DATA_DIR points (CI: ../shared/data);
skipped where it is not set or holds no MNIST."""

from __future__ import annotations

import pytest
from support import REAL_DATA, launch, results_under


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(REAL_DATA is None or not (REAL_DATA / "MNIST").is_dir(),
                    reason=f"REAL_DATA_DIR={REAL_DATA} holds no MNIST")
def test_one_epoch_of_lenet5_maxpool_on_real_mnist_reaches_97_percent(tmp_path):
    run = launch([f"paths.data_dir={REAL_DATA}", f"paths.cache_dir={tmp_path / 'cache'}",
                  "trainer.max_epochs=1", "accelerator=cpu", "logger=none",
                  # tested elsewhere
                  "evaluation.shift.enabled=false", "evaluation.feature_maps.enabled=false",
                  "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["params"]["total"] == 61_706
    assert results["test"]["acc_top1"] >= 0.97
    # from a notebook: the real test images as torchvision's parser gives them, predicted
    import downsample_study as ds
    from downsample_study.data.datasets import load_splits

    job = ds.load_run(tmp_path / "out")
    _, test = load_splits(job.config.dataset, REAL_DATA, tmp_path / "cache")
    predicted = job.predict(test.images).argmax(dim=1)
    assert (predicted == test.labels).float().mean().item() == pytest.approx(
        results["test"]["acc_top1"], abs=1e-6)


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.skipif(REAL_DATA is None or not (REAL_DATA / "MNIST").is_dir(),
                    reason=f"REAL_DATA_DIR={REAL_DATA} holds no MNIST")
def test_packed_and_solo_seeds_agree_on_real_mnist_within_the_ci_of_their_difference(tmp_path):
    """Five seeds of LeNet-5 + max pool (80 steps, 4,000 test images), alone and as one pack:
    the mean test top-1 of the two agree within the 95 % CI of their paired difference."""
    from scipy import stats

    job = ["-m", f"paths.data_dir={REAL_DATA}", f"paths.cache_dir={tmp_path / 'cache'}",
           "trainer.max_epochs=1", "trainer.limit_train_batches=80", "accelerator=cpu",
           "trainer.limit_val_batches=2", "trainer.limit_test_batches=4",
           "logger=none", "evaluation=none",
           "seed=range(5)"]
    assert launch([*job, "hydra.sweep.dir=solo"]).exit_code == 0
    assert launch([*job, "hydra/sweeper=packed", "hydra.sweep.dir=packed"]).exit_code == 0
    accuracy = {folder: {r["config"]["seed"]: r["test"]["acc_top1"]
                         for r in results_under(tmp_path / folder)}
                for folder in ("solo", "packed")}
    assert accuracy["solo"].keys() == accuracy["packed"].keys() == set(range(5))
    difference = [accuracy["packed"][s] - accuracy["solo"][s] for s in range(5)]
    mean = sum(difference) / 5
    half_width = stats.t.ppf(0.975, 4) * stats.sem(difference) if any(difference) else 0.0
    assert abs(mean) <= half_width
    assert min(accuracy["solo"].values()) > 0.8  # trained: 80 steps reach ~90 %


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.skipif(REAL_DATA is None or not (REAL_DATA / "MNIST").is_dir(),
                    reason=f"REAL_DATA_DIR={REAL_DATA} holds no MNIST")
def test_every_evaluation_on_real_mnist_gets_its_section_in_the_report(tmp_path):
    """Two operators × two seeds (200 steps), every evaluation on 200 test images."""
    from downsample_study.evaluations.configs import EVALUATIONS
    from downsample_study.report.build import write_report

    sized = [f"evaluation.{name}.images=200" for name in
             ("shift_grid", "corruptions", "attacks", "equivariance", "aliasing")]
    run = launch(["-m", f"paths.data_dir={REAL_DATA}", f"paths.cache_dir={tmp_path / 'cache'}",
                  "trainer.max_epochs=1", "trainer.limit_train_batches=200", "accelerator=cpu",
                  "logger=none", "evaluation=all", *sized, "evaluation.cost.repeats=3",
                  "downsample=maxpool,blurpool", "seed=range(2)", "hydra.sweep.dir=sweep"])
    assert run.exit_code == 0
    found = results_under(tmp_path / "sweep")
    assert len(found) == 4
    for results in found:
        assert set(results["evaluations"]) == set(EVALUATIONS.names())
        assert results["test"]["acc_top1"] > 0.8  # trained: 200 steps reach ~90 %
        grid = results["evaluations"]["shift_grid"]["summary"]
        # the grid adversary wins where random shifts may not: worst ≤ mean ≤ clean
        assert grid["worst_circular"] <= grid["mean_circular"] <= results["test"]["acc_top1"]
    write_report(tmp_path / "sweep")
    report = (tmp_path / "sweep" / "report.md").read_text()
    for title in ("## Shift robustness", "(`shift_grid`)", "(`equivariance`)", "(`aliasing`)",
                  "(`corruptions`)", "(`attacks`)", "(`cost`)", "mCE %"):
        assert title in report, title
    for plot in ("shift_grid_circular.png", "accuracy_vs_robustness.png",
                 "accuracy_vs_epsilon.png"):
        assert (tmp_path / "sweep" / plot).is_file(), plot
