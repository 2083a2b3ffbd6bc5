"""Hydra's conventions kept: ``glob()`` sweeps, ``+`` on a group that has a default,
``HYDRA_FULL_ERROR`` (only ``1`` shows tracebacks), and no call Hydra 1.4 deprecates."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from support import launch

from downsample_study import compose
from downsample_study.config.store import CONFIG_DIR
from downsample_study.errors import ConfigError
from downsample_study.sweeps.progress import describe, read_progress

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@pytest.mark.parametrize(("value", "traceback"), [
    (None, False), ("0", False), ("", False), ("true", False), ("1", True)],
    ids=["unset", "0", "empty", "true", "1"])
def test_only_hydra_full_error_1_turns_a_one_line_error_into_a_traceback(value, traceback,
                                                                          tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if value is not None:
        env["HYDRA_FULL_ERROR"] = value
    run = subprocess.run([sys.executable, "-m", "downsample_study", "downsample=nope"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    if traceback:
        assert "Traceback" in run.stderr and "MissingConfigException" in run.stderr
    else:
        [line] = run.stderr.splitlines()
        assert line.startswith(
            "error: downsample=nope: no such option; allowed: aps, asap, avgpool")


@pytest.mark.parametrize(("override", "group", "option"), [
    ("+experiment=seed000", "experiment", "seed000"),  # a default of null
    ("+dataset=cifar10", "dataset", "cifar10"),  # a default of an option
    ("+hydra/launcher=parallel", "hydra/launcher", "parallel"),
])
def test_plus_on_a_group_with_a_default_says_to_choose_it_without_plus(override, group, option,
                                                                        capsys):
    run = launch(["--cfg", "job", override], capsys)
    assert run.exit_code == 1
    assert run.output.splitlines() == [
        f"error: {override}: {group} is in the defaults list already (null or an option), so "
        f"choose it without '+': {group}={option} ('+' adds a group the defaults list lacks)"]


def test_the_api_says_the_same_of_plus_on_a_group_with_a_default():
    with pytest.raises(ConfigError, match=r"^\+experiment=seed000: .* experiment=seed000 "):
        compose(["+experiment=seed000"])


def test_a_glob_sweep_runs_its_checks_without_a_warning_and_progress_reads_its_plan(
        quick, tmp_path, capsys, recwarn):
    run = launch(["-m", *quick, "logger=none", "trainer.limit_train_batches=2",
                  "evaluation.feature_maps.enabled=false", "downsample=glob(a*,exclude=asap)",
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 0, run.output[-2000:]
    assert [str(w.message) for w in recwarn if "Callback" in str(w.message)] == []
    lines = describe(read_progress(tmp_path / "sweep"))
    assert lines[0].startswith(f"{tmp_path / 'sweep'} (hydra/sweeper=basic)")
    assert lines[1:] == ["jobs: 2 of 2 finished (2 completed); 0 running now",
                         "done: every planned job finished"]


@pytest.mark.parametrize(("sweep", "message"), [
    (["downsample=glob(a*,exclude=asap)", "seed=0,0"], "seed=0,0: 0 given more than once"),
    (["downsample=glob(nothing*)"], "downsample=glob(nothing*): an empty sweep, so no job"),
], ids=["a-value-twice-beside-a-glob", "a-glob-matching-nothing"])
def test_a_glob_sweep_is_checked_before_it_starts(sweep, message, quick, tmp_path, capsys):
    run = launch(["-m", *quick, "logger=none", "mode=summary", *sweep,
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1
    assert f"error: {message}" in run.output
    assert not list((tmp_path / "sweep").glob("*/.hydra"))  # no job started


@pytest.mark.parametrize("pattern", ["a*", "*pool", "nothing*"])
def test_progress_reads_a_finished_glob_sweeps_plan_from_its_folder(pattern, tmp_path):
    """In a process of its own, as ``progress`` is: Hydra's options of the group, unstarted."""
    planned = len(list((CONFIG_DIR / "downsample").glob(f"{pattern}.yaml")))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    OmegaConf.save(OmegaConf.create({"mode": "train", "hydra": {
        "sweeper": {"_target_": BASIC}, "overrides": {"task": [f"downsample=glob({pattern})"]},
        "job": {"config": {"override_dirname": {"exclude_keys": []}}}}}),
        sweep / "multirun.yaml")
    GlobalHydra.instance().clear()
    assert [stage.planned for stage in read_progress(sweep).stages] == [planned]


# Each warning on a line of its own, after the module that called warnings.warn (Hydra's
# deprecation_warning points the warning at its caller, so the location would not tell).
WARNED_BY = """import sys, warnings
def _show(message, category, filename, lineno, file=None, line=None):
    frame = sys._getframe(1)
    while frame and frame.f_globals.get("__name__") in ("warnings", "_py_warnings"):
        frame = frame.f_back
    module = frame.f_globals.get("__name__", "?") if frame else "?"
    text = str(message).replace(chr(10), " ")
    print(f"warned by {module}: {category.__name__}: {text} ({filename}:{lineno})",
          file=sys.stderr)
warnings.showwarning = _show
"""


@pytest.mark.parametrize("code", [
    # a sweep: the callbacks Hydra instantiates, the resolvers, the schemas stored
    "from downsample_study.cli import run; run(['-m', 'mode=summary', 'logger=none', "
    "'seed=0,1', 'hydra.sweep.dir=sweep'])",
    "import downsample_study as ds; ds.compose('seed=1'); ds.compose('seed=2')",  # the API
])
def test_nothing_the_installed_hydra_deprecates_is_called(code, tmp_path):
    """Hydra 1.4 warns of ``version_base``, a target instantiated without a whitelist, a schema
    stored again without ``replace`` and OmegaConf 2.4's ``register_new_resolver``. Only the
    deprecations Hydra or OmegaConf warn of count: another library's (an older Pillow's or
    matplotlib's, at the lowest versions pyproject.toml allows) are not this project's calls."""
    run = subprocess.run([sys.executable, "-W", "always", "-c", WARNED_BY + code],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    warned = [line for line in run.stderr.splitlines()
              if re.match(r"warned by (hydra|omegaconf)[.:]", line)
              and re.search(r"Deprecation|Migration|deprecated|Hydra 1\.[45]", line)]
    assert warned == []
