"""Fast paths and the benchmark: they must run and change nothing but speed."""

from __future__ import annotations

import pytest
from conftest import launch, results_under

from downsample_study import bench


def test_channels_last_trains_to_the_same_result(quick, tmp_path):
    for name, extra in (("plain", []), ("nhwc", ["speed.channels_last=true"])):
        run = launch([*quick, "logger=none", "evaluation.feature_maps=false",
                      f"hydra.run.dir={name}", *extra])
        assert run.exit_code == 0
    plain, nhwc = (results_under(tmp_path / name)[0] for name in ("plain", "nhwc"))
    # NHWC kernels sum in another order: equal up to rounding, not bit for bit
    assert nhwc["test"]["acc_top1"] == pytest.approx(plain["test"]["acc_top1"], abs=0.02)
    assert nhwc["test"]["loss"] == pytest.approx(plain["test"]["loss"], rel=0.05)


def test_unknown_compile_mode_is_rejected(quick, capsys):
    run = launch([*quick, "speed.compile=fastest"], capsys)
    assert run.exit_code == 1
    assert "speed.compile" in run.output and "reduce-overhead" in run.output


@pytest.mark.slow
def test_benchmark_prints_the_ratio_lines(data_dir, tmp_path, capsys):
    bench.main(["--data-dir", str(data_dir), "--cache-dir", str(tmp_path / "cache"),
                "--dataset", "fashion_mnist", "--batch-sizes", "32", "--steps", "2",
                "--rounds", "1", "--startup-runs", "1", "--set", "dataset.val_size=100"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("framework/tensor_loop = ")
    assert lines[-1].startswith("framework/dataloader_loop = ")
    assert float(lines[-1].split("=")[1]) > 0
    assert any(line.startswith("start-up to first training step:") for line in lines)
