"""The side commands (report, progress, record) by their own names and as subcommands of
``downsample-study``, named in ``--help``; and the package's API listed by ``dir()``."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import launch

SIDE = ("report", "progress", "record")
BIN = Path(sys.executable).parent  # the scripts `make install` puts beside the interpreter


MODULES = {"report": "downsample_study.report.cli", "progress": "downsample_study.sweeps.progress",
           "record": "downsample_study.sweeps.record"}


@pytest.mark.parametrize("name", SIDE)
@pytest.mark.parametrize("form", ["script", "subcommand"])
def test_a_side_command_runs_by_name_and_refuses_bad_arguments_in_a_line(name, form, tmp_path):
    command = ([str(BIN / f"downsample-study-{name}")] if form == "script" else
               [str(BIN / "downsample-study"), name])
    run = subprocess.run([*command, "a", "b", "--bogus"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "WANDB_MODE": "disabled"})
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    shown = f"downsample-study-{name}" if form == "script" else f"downsample-study {name}"
    assert line.startswith("error: unrecognized arguments: ") and "--bogus; " in line, line
    assert f"; usage: {shown} [-h] " in line, line


def _in_process(name: str, form: str, args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """The side command ``name`` on ``args`` started as ``form``: its exit status and output."""
    if form == "subcommand":
        run = launch([name, *args], capsys)
        return run.exit_code, run.output
    if form == "script":  # as its console script starts it
        monkeypatch.setattr(sys, "argv", [str(BIN / f"downsample-study-{name}")])
    main = importlib.import_module(MODULES[name]).main
    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("name", SIDE)
@pytest.mark.parametrize(("form", "shown"), [
    ("subcommand", "python -m downsample_study {}"), ("script", "downsample-study-{}"),
    ("module", "python -m downsample_study.{}")])
@pytest.mark.parametrize(("args", "status", "expected"), [
    ([], 2, "error: the following arguments are required: sweep"),
    (["a", "b", "c", "--bogus"], 2, "error: unrecognized arguments: "),
    (["--margin"], 2, "error: "),  # report's option without its value; the others lack it
    (["--help"], 0, "usage: "),
], ids=["no-sweep", "an-unknown-option", "an-option-without-its-value", "help"])
def test_each_form_of_a_side_command_names_itself_and_exits_as_argparse_does(
        name, form, shown, args, status, expected, capsys, monkeypatch):
    code, output = _in_process(name, form, args, capsys, monkeypatch)
    module = MODULES[name].removeprefix("downsample_study.").removesuffix(".cli")
    shown = shown.format(module if form == "module" else name)
    assert code == status
    assert output.startswith(expected), output
    assert f"{'' if status == 0 else '; '}usage: {shown} [-h]" in output
    if status:
        assert len(output.splitlines()) == 1


def test_a_side_command_in_process_reads_its_folder_before_hydra_parses_anything(tmp_path,
                                                                                  capsys):
    run = launch(["progress", str(tmp_path / "missing")], capsys)
    assert run.exit_code == 2
    assert run.output == f"error: {tmp_path / 'missing'}: no such folder (a sweep folder: " \
                         f"hydra.sweep.dir)\n"


def test_help_names_each_side_command_in_a_line(capsys):
    run = launch(["--help"], capsys)
    assert run.exit_code == 0
    section = run.output.split("== Commands")[1].split("\n\n")[0]
    commands = section.splitlines()[1:]  # below its heading
    assert [line.split()[0] for line in commands] == list(SIDE)
    assert all(len(line.split()) > 3 for line in commands)  # each says what it does


def test_dir_of_the_package_lists_its_api_without_importing_torch(tmp_path):
    code = ("import sys, downsample_study as ds\n"
            "print(*sorted(set(ds.__all__) - set(dir(ds))), sep=',')\n"
            "print('torch' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=True)
    unlisted, torch_imported = run.stdout.splitlines()
    assert unlisted == ""  # load_run, load_sweep, compose, Run: a notebook's completion shows them
    assert torch_imported == "False"  # the command line imports the package before torch
