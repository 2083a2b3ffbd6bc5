"""The whole-study benchmark (``--study``): both sides train for real, and what it prints is
what they measured."""

from __future__ import annotations

import re
import statistics

import pytest
from support import results_under

from benchmarks.cli import _parser
from benchmarks.study import OUTPUT_FILE, plain_script, run_study

SEEDS, TEST_IMAGES = 2, 200  # the synthetic FashionMNIST's test split (conftest.data_dir)
VAL_SIZE = 131  # prime to 200: only 0 and 1 are shares of both, so val and test accuracies differ


def _args(data_dir, tmp_path, *extra: str):
    return _parser().parse_args([
        "--data-dir", str(data_dir), "--cache-dir", str(tmp_path / "cache"), "--rounds", "1",
        "--study-seeds", str(SEEDS), "--study-epochs", "1", "--study-batch", "32",
        "--set", f"dataset.val_size={VAL_SIZE}", *extra,
    ])


def _on_the_test_split(accuracy: float) -> bool:
    """Whether ``accuracy`` is a share of the 200 test images (results.json holds float32s)."""
    return 0 <= accuracy <= 1 and accuracy * TEST_IMAGES == pytest.approx(
        round(accuracy * TEST_IMAGES), abs=1e-3)


def test_study_prints_both_sides_as_their_runs_measured_them(data_dir, tmp_path, capsys):
    measured = run_study(_args(data_dir, tmp_path), tmp_path / "study")
    printed = capsys.readouterr().out

    # the framework: each seed's job of the sweep, as its results.json holds it
    jobs = results_under(tmp_path / "study" / "round1" / "framework" / "sweep")
    assert sorted(job["config"]["seed"] for job in jobs) == list(range(SEEDS))
    for job in jobs:
        assert job["epochs"] == 1 and job["config"]["dataset"]["batch_size"] == 32
        assert job["config"]["dataset"]["val_size"] == VAL_SIZE and job["pack"]["size"] == SEEDS
        assert _on_the_test_split(job["test"]["acc_top1"])
    framework = statistics.mean(job["test"]["acc_top1"] for job in jobs)

    # the plain script: one epoch per seed, and the test accuracy it printed per seed
    output = (tmp_path / "study" / "round1" / "plain_script" / OUTPUT_FILE).read_text()
    assert len(re.findall(r"^  seed \d+ epoch 1: ", output, re.MULTILINE)) == SEEDS
    assert "epoch 2" not in output
    per_seed = [float(a) for a in re.findall(r"^seed \d+: .*test top-1 ([0-9.]+)", output,
                                             re.MULTILINE)]
    assert len(per_seed) == SEEDS and all(map(_on_the_test_split, per_seed))
    plain = statistics.mean(per_seed)

    assert measured["framework"][1] == pytest.approx(framework)
    assert measured["plain_script"][1] == pytest.approx(plain)
    rows = {line.split()[0]: line.split() for line in printed.splitlines()
            if line.startswith("  plain_script ") or line.startswith("  framework ")}
    for side, accuracy in (("framework", framework), ("plain_script", plain)):
        seconds = measured[side][0]
        assert seconds > 0 and rows[side][1] == f"{seconds:.1f}"
        assert rows[side][2] == f"{accuracy:.4f}"


def test_a_failing_side_stops_the_study_with_its_output(tmp_path):
    args = _args(tmp_path / "no data", tmp_path)
    with pytest.raises(RuntimeError, match=r"the plain script exited with 1:(.|\n)*No such file"):
        plain_script(args, tmp_path / "plain")
