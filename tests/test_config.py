"""Typed configs: every mistake stops at start-up, naming the key and what is allowed."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Literal, Optional

import pytest
import torch
from support import launch, results_under


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("downsample=nosuchop", ["downsample", "maxpool", "stride2_fold"]),  # Hydra's group check
        ("downsample.name=nosuchop", ["downsample.name", "maxpool", "stride2_fold"]),
        ("downsample.batch_norm=maybe", ["batch_norm", "maybe"]),
        ("downsample.dropout=1.5", ["downsample.dropout", "1.5"]),
        ("downsample.kernel_sise=3", ["kernel_sise"]),
        ("model.conv_activation=relu", ["conv_activation"]),  # lenet5 has no such key
        ("optimizer.lr=fast", ["lr", "fast"]),
        ("optimizer.lr=-1", ["optimizer.lr"]),
        ("trainer.max_epoch=1", ["max_epoch"]),
        ("seed=abc", ["seed"]),
        ("dataset.val_size=0", ["dataset.val_size"]),
        ("mode=trian", ["mode", "summary"]),
        ("logger.wandb.mode=sometimes", ["logger.wandb.mode", "offline"]),
        # a name set on its own: the node's keys must fit the schema that name selects
        ("downsample.name=stride2", ["downsample.stride: no such key", "kernel_size"]),
        # values that type-check but make no sense
        ("downsample.kernel_size=0", ["downsample.kernel_size: must be >= 1, got 0"]),
        ("downsample.stride=0", ["downsample.stride: must be >= 1"]),
        ("optimizer.weight_decay=-0.1", ["optimizer.weight_decay: must be >= 0"]),
        ("optimizer.betas=[0.9,1.0]", ["optimizer.betas[1]", "[0, 1)"]),
        ("dataset.batch_size=0", ["dataset.batch_size: must be >= 1"]),
        ("trainer.max_epochs=-1", ["trainer.max_epochs", "trains forever"]),
        ("trainer.max_epochs=0", ["trainer.max_epochs", "trains nothing"]),
        ("trainer.max_steps=0", ["trainer.max_steps: must be >= 1"]),
        ("trainer.limit_train_batches=0", ["trainer.limit_train_batches", "trains nothing"]),
        ("trainer.limit_val_batches=0", ["trainer.limit_val_batches", "selects the checkpoint"]),
        ("trainer.limit_test_batches=1.5", ["trainer.limit_test_batches", "(0, 1]"]),
        ("trainer.check_val_every_n_epoch=2", ["check_val_every_n_epoch", "never validates"]),
        ("trainer.log_every_n_steps=0", ["trainer.log_every_n_steps: must be >= 1"]),
        ("trainer.min_epochs=3", ["trainer.min_epochs: 3 > trainer.max_epochs=1"]),
        ("trainer.val_check_interval=0", ["trainer.val_check_interval", "(0, 1]"]),
        ("trainer.accelerator=tpu", ["trainer:", "torch_xla"]),  # a package not installed
        # a device this machine lacks: what was asked for beside what the machine has
        pytest.param("accelerator=gpu", ["trainer:", "(trainer.accelerator=gpu, "
                                         "trainer.devices=1; this machine has 0 CUDA GPUs and"],
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")),
        # a type the Trainer's annotation does not admit (Lightning would fail inside fit)
        ("trainer.max_epochs=1.5", ["trainer.max_epochs: expected an integer, got '1.5'"]),
        ("trainer.limit_train_batches=abc",
         ["trainer.limit_train_batches: expected a number or null, got 'abc'"]),
        ("trainer.deterministic=sometimes",
         ["trainer.deterministic: expected true, false, 'warn' or null, got 'sometimes'"]),
        ("trainer.fast_dev_run=x", ["trainer.fast_dev_run: expected an integer, true or false"]),
        ("trainer.precision=16-mxied", ["trainer.precision: expected 64, 32", "'16-mixed'"]),
        ("seed=-1", ["seed: must be in 0 to 4294967295"]),
        # what the report will compare, checked before a sweep trains for it
        ("report.equivalence_margin=0", ["report.equivalence_margin: must be > 0, got 0"]),
        ("report.baselines=[{downsample:maxpol}]",
         ["report.baselines[0].downsample: unknown value 'maxpol'; allowed: aps", "maxpool"]),
        ("report.baselines=[{dowsample.batch_norm:false}]",
         ["report.baselines[0].dowsample.batch_norm: no such key in the config"]),
        # a value of the wrong shape, named down to the list item
        ("report.baselines=abc", ["report.baselines: expected a list ([a, b]), got type str"]),
        ("report.baselines=[{downsample:maxpool},1]",
         ["report.baselines[1]: expected a mapping ({key: value}), got type int"]),
        ("optimizer.betas=[0.9,b]", ["optimizer.betas[1]: expected a number, got 'b'"]),
        ("optimizer.betas=[0.9]", ["optimizer.betas: a pair [beta1, beta2] is required, got 1 "
                                   "value"]),
        ("report.baselines=[{}]", ["report.baselines[0]: empty; a baseline names the values"]),
        ("evaluation.shift.max=28", ["evaluation.shift.max", "out of the frame; at most 27"]),
        ("evaluation.shift.modes=[]", ["evaluation.shift.modes: empty, so the evaluation "
                                       "measures nothing; list zero and/or circular"]),
        # read only by hydra/sweeper=packed, but wrong wherever it is written
        ("pack.size=abc", ["pack.size: a number of members >= 1 or auto, got 'abc'"]),
        ("pack.size=0", ["pack.size: a number of members >= 1 or auto, got '0'"]),
        ("paths.data_dir=''", ["paths.data_dir: empty; expected a folder's path"]),
        # a key no schema has, added with "+", which Hydra lets into a closed node
        ("+downsample.foo=1", ["downsample.foo: no such key; keys of downsample: batch_norm"]),
        ("+trainer.max_epoch=1", ["trainer.max_epoch: no such key (did you mean max_epochs?)"]),
        ("+evaluation.shift.mode=zero", ["evaluation.shift.mode: no such key (did you mean "
                                         "modes?)"]),
        ("evaluation.shift=false", ["evaluation.shift: a node of options (ShiftConfig), not a "
                                    "value; set one of its keys (an evaluation: "
                                    "evaluation.shift.enabled=false)"]),
        ("~downsample", ["downsample: none chosen (~downsample removes it); choose one: "
                         "downsample=<aps|asap|avgpool"]),
        # read by mode=eval alone: training does not start from it, so it is not ignored
        ("checkpoint=outputs/job", ["checkpoint: read by mode=eval alone", "not by mode=train"]),
    ],
)
def test_bad_config_fails_at_start_up_naming_the_key(override, expected, quick, capsys, tmp_path):
    run = launch([*quick, override, "hydra.run.dir=out"], capsys)
    assert run.exit_code != 0
    for word in expected:
        assert word in run.output, (word, run.output[-2000:])
    assert "Traceback" not in run.output
    # nothing trained: no checkpoint, and no results claiming completion
    assert not list(tmp_path.rglob("*.ckpt"))
    assert all(r["status"] == "failed" for r in results_under(tmp_path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["downsample=stride2", "downsample.kernel_size=abc"],
         "downsample.kernel_size: expected an integer, got 'abc'"),
        (["downsample=blurpool", "downsample.variant=min"],
         "downsample.variant: unknown value 'min'; allowed: max, avg, conv"),
        (["model=lenet5_classic", "model.conv_activation=tanh"],
         "model.conv_activation: unknown value 'tanh'; allowed: none, relu"),
        (["optimizer=sgd", "optimizer.betas=[0.9,0.99]"], "optimizer.betas: no such key"),
        (["logger=csv", "logger.csv.project=x"], "logger.csv.project: no such key"),
        (["logger=[csv,bogus]"], "logger=bogus: no such option; allowed: csv, none, tensorboard"),
        (["logger=[csv,wandb]", "logger.wandb.projct=x"],
         "logger.wandb.projct: no such key (did you mean project?)"),
        (["dataset=cifar10", "dataset.augmnet=true"],
         "dataset.augmnet: no such key (did you mean augment?)"),
        (["downsample=nope"], "downsample=nope: no such option; allowed: aps, asap, avgpool"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs: expected an integer, got 'abc'"),
        # a sweeper's own keys, from its YAML (a closed node without a schema)
        (["hydra/sweeper=tuned", "hydra.sweeper.lr.lwo=1"],
         "hydra.sweeper.lr.lwo: no such key (did you mean low?); keys of hydra.sweeper.lr: "
         "at_once, epochs, high, low"),
        (["trainer.enable_progress_bar=maybe"],
         "trainer.enable_progress_bar: expected true or false, got 'maybe'"),
    ],
)
def test_cfg_job_fails_at_composition_in_one_line(overrides, message, capsys):
    run = launch(["--cfg", "job", *overrides], capsys)
    assert run.exit_code == 1
    [line] = run.output.strip().splitlines()  # one line, nothing printed of the config
    assert line.startswith(f"error: {message}"), line


def test_summary_mode_prints_the_table_and_trains_nothing(quick, capsys, tmp_path):
    run = launch([*quick, "mode=summary", "model=lenet5_nopool", "downsample=stride2_fold",
                  "hydra.run.dir=out"], capsys)
    assert run.exit_code == 0
    assert "66,346 total" in run.output and "forward FLOPs per image" in run.output
    assert not results_under(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["downsample=stride2", "downsample.kernel_size=0"],
         "downsample.kernel_size: must be >= 1"),
        (["downsample=convpool", "downsample.conv_kernel_size=0"], "downsample.conv_kernel_size"),
        (["model=convpool3", "dataset=cifar10", "model.channels=[]"],
         "model.channels: at least one conv-pool block is needed"),
        (["model=convpool3", "dataset=cifar10", "model.channels=[20,0]"],
         "model.channels[1]: must be >= 1, got 0"),
        (["optimizer=sgd", "optimizer.momentum=1.5"], "optimizer.momentum: a probability"),
    ],
)
def test_an_option_that_makes_no_sense_is_refused_before_any_layer_is_built(
    overrides, expected, quick, capsys
):
    run = launch([*quick, "mode=summary", *overrides, "hydra.run.dir=out"], capsys)
    assert run.exit_code == 1
    assert f"error: {expected}" in run.output
    assert "Traceback" not in run.output and "layer " not in run.output  # no layer table


@pytest.mark.parametrize("sweep", ["downsample=maxpool,", "seed=range(3", "downsample=[maxpool"])
def test_a_malformed_sweep_override_is_one_line(sweep, quick, capsys, tmp_path):
    run = launch(["-m", *quick, sweep, "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1
    [line] = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert sweep in line and "Traceback" not in run.output
    assert not (tmp_path / "sweep").exists()


def test_a_name_set_on_its_own_types_the_node_by_that_entry(quick, capsys):
    # stride2_fold's node has only the shared keys; maxpool's schema adds its own defaults
    run = launch([*quick, "mode=summary", "downsample=stride2_fold", "downsample.name=maxpool",
                  "hydra.run.dir=out"], capsys)
    assert run.exit_code == 0
    assert "down1 *" in run.output and "61,706 total" in run.output


def test_collapse_is_reported_without_traceback(quick, capsys):
    run = launch([*quick, "mode=summary", "model=convpool3", "dataset=cifar10",
                  "model.channels=[20,50,50,50]"], capsys)
    assert run.exit_code == 1
    assert "'conv4'" in run.output and "50×1×1" in run.output
    assert "Traceback" not in run.output


def test_help_says_what_the_tool_does_and_lists_groups_presets_and_examples(capsys):
    run = launch(["--help"], capsys)
    assert run.exit_code == 0
    assert run.output.startswith("downsample_study: what the downsampling step")
    groups = run.output.split("== Configuration groups ==")[1].split("== Sweeps")[0]
    assert "downsample: aps, asap, avgpool, blurpool" in groups and "schema" not in groups
    assert "hydra/launcher: local, parallel, slurm" in run.output
    assert "hydra/sweeper: lr_search" in run.output
    assert run.output.count("python -m downsample_study") >= 5  # the examples


@pytest.mark.parametrize("preset", ["hydra/launcher=parallel", "hydra/launcher=slurm",
                                    "hydra/launcher=local", "hydra/sweeper=lr_search"])
def test_cfg_hydra_resolves_with_every_preset(preset, capsys):
    run = launch(["--cfg", "hydra", "--resolve", preset], capsys)
    assert run.exit_code == 0 and "error" not in run.output
    assert "${" not in run.output  # every interpolation resolved


def test_the_jobs_log_file_holds_what_it_printed(quick, tmp_path, capsys):
    run = launch([*quick, "logger=none", "evaluation.feature_maps.enabled=false",
                  "hydra.run.dir=out"], capsys)
    assert run.exit_code == 0
    log = (tmp_path / "out" / "downsample_study.log").read_text()  # the job is named so
    for line in ("61,706 total", "epoch 1/1", "shift (", "test, on the checkpoint"):
        assert line in run.output and line in log, line


def test_lightnings_lines_show_once_and_reach_the_log_file(quick, tmp_path):
    import subprocess
    import sys

    # a process of its own: Lightning's loggers are set up by its first import, which in the
    # command line comes after Hydra configured logging
    run = subprocess.run([sys.executable, "-m", "downsample_study", *quick, "logger=none",
                          "evaluation.feature_maps.enabled=false", "hydra.run.dir=out"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    log = (tmp_path / "out" / "downsample_study.log").read_text()
    for line in ("GPU available: ", "`Trainer.fit` stopped"):
        assert (run.stdout + run.stderr).count(line) == 1 and line in log, line


def test_tab_completion_of_the_script_completes_options(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "downsample-study"
    install = subprocess.run([script, "-sc", "install=bash"], capture_output=True, text=True,
                             check=True, cwd=tmp_path)
    assert install.stdout.rstrip().endswith("-F hydra_bash_completion downsample-study")
    query = subprocess.run([script, "-sc", "query=bash"], capture_output=True, text=True,
                           check=True, cwd=tmp_path,
                           env={**os.environ, "COMP_LINE": "downsample-study downsample=bl",
                                "COMP_POINT": "30"})
    assert "downsample=blurpool" in query.stdout.split()


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job", "downsample=blurpool"],
                                  ["trainer.max_epoch=1"], ["downsample=nosuchop"]])
def test_composing_a_config_imports_no_torch(args, tmp_path):
    """Help, --cfg and a config error answer without loading torch: the schemas and the
    registries' names are torch-free (the builders load on a job's first lookup), and
    Lightning's Trainer arguments are read once per version (at a first start: the
    ``hermetic`` fixture's cache holds them)."""
    import subprocess
    import sys

    code = ("import sys\nfrom downsample_study.cli import run\n"
            f"status = run({args!r})\n"
            "print(status, sorted({'torch', 'lightning', 'torchvision'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    status, imported = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == ("0" if args[0].startswith("--") else "1")
    assert imported == "[]"


def test_trainer_arguments_are_read_once_per_lightning_version(monkeypatch, tmp_path):
    import inspect

    from lightning import Trainer

    from downsample_study.config.store import MANAGED_TRAINER_ARGS, trainer_arguments

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    expected = [n for n, p in inspect.signature(Trainer.__init__).parameters.items()
                if p.kind is p.KEYWORD_ONLY and n not in MANAGED_TRAINER_ARGS]
    specs = trainer_arguments()
    assert list(specs) == expected
    assert specs["max_epochs"] == {"types": ["int", "null"], "values": []}
    [cache] = (tmp_path / "downsample_study").glob("trainer-arguments-*.json")
    assert cache.name.endswith(f"-{__import__('lightning').__version__}.json")
    spec = {"types": ["int"], "values": []}  # what a cached spec is taken as, less the
    cache.write_text(json.dumps({"max_epochs": spec, "logger": None}))  # framework's own
    assert trainer_arguments() == {"max_epochs": spec}
    for broken in ("{not json", '["max_epochs"]', '{"max_epochs": {"types": 1}}'):
        cache.write_text(broken)  # a broken or older cache is read again from the signature
        assert trainer_arguments() == specs
    blocked = tmp_path / "a_file"  # where nothing can be written, the signature is read
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert trainer_arguments() == specs
    signature = inspect.signature

    def unevaluable(function, *, eval_str=False):  # a later Lightning's annotations, say
        if eval_str:
            raise NameError("name '_PRECISION_INPUT' is not defined")
        return signature(function)

    monkeypatch.setattr(inspect, "signature", unevaluable)
    assert list(trainer_arguments()) == expected  # the names still; types as they read


@pytest.mark.parametrize(
    ("annotation", "spec"),
    [
        (int, {"types": ["int"], "values": []}),
        (Optional[int], {"types": ["int", "null"], "values": []}),  # noqa: UP045
        (float | None, {"types": ["float", "null"], "values": []}),
        (bool | Literal["warn"] | None, {"types": ["bool", "null"], "values": ["warn"]}),
        (Literal[16, "16-mixed"], {"types": [], "values": [16, "16-mixed"]}),
        # an object among the choices: left to Lightning
        (str | datetime.timedelta | None, None),
        (list[int] | str, None),
        (Literal[Path("x")], None),
    ],
)
def test_a_trainer_annotation_gives_the_plain_values_it_admits(annotation, spec):
    from downsample_study.config.trainer_checks import plain_values

    assert plain_values(annotation) == spec




def test_a_baseline_on_a_flag_is_written_as_on_the_command_line():
    from downsample_study import compose

    cfg = compose(["report.baselines=[{downsample.batch_norm:false},{model:lenet5}]"])
    assert [dict(spec) for spec in cfg.report.baselines] == [
        {"downsample.batch_norm": False}, {"model": "lenet5"}]


@pytest.mark.parametrize(("environment", "data_dir", "cache_dir"), [
    ({}, "./data", "~/.cache/downsample_study"),
    ({"DATA_DIR": "/data", "XDG_CACHE_HOME": "/cache"}, "/data", "/cache/downsample_study"),
    # set but empty counts as unset (XDG's rule): not the working directory, not /
    ({"DATA_DIR": "", "XDG_CACHE_HOME": ""}, "./data", "~/.cache/downsample_study"),
])
def test_the_paths_come_from_the_environment_where_it_sets_them(environment, data_dir,
                                                                cache_dir, monkeypatch):
    import downsample_study as ds

    for name in ("DATA_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    paths = ds.compose().paths
    assert (paths.data_dir, paths.cache_dir) == (data_dir, cache_dir)


def _composed_yaml(overrides: list[str], package: str | None = None) -> str:
    """What ``--cfg job`` prints, less the Trainer keys left null, from the Compose API."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from downsample_study.config.hydra_versions import VERSION_BASE
    from downsample_study.config.store import CONFIG_DIR, register_configs

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), **VERSION_BASE):
        cfg = compose("config", overrides=overrides)
    trainer = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if v is not None}
    if package == "trainer":
        return f"# @package trainer\n{OmegaConf.to_yaml(trainer)}"
    return OmegaConf.to_yaml({**OmegaConf.to_container(cfg, enum_to_str=True), "trainer": trainer})


@pytest.mark.parametrize(("flags", "overrides", "package"), [
    (["--cfg", "job"], [], None),
    (["-c", "job"], ["trainer.gradient_clip_val=1.0"], None),  # a key set: it shows
    (["--cfg=job", "--package", "trainer"], ["accelerator=cpu"], "trainer"),
    (["--cfg", "job", "-p", "_global_"], ["trainer.max_epochs=null"], None),  # set to null
    (["-cn", "config", "-c", "job"], [], None),  # -cn: Hydra's --config-name, not -c n
], ids=["cfg-job", "a-key-set-shows", "package-trainer", "a-key-set-to-null", "config-name"])
def test_cfg_job_shows_the_trainer_keys_that_are_set_and_every_other_key(flags, overrides,
                                                                         package, capsys):
    run = launch([*flags, *overrides], capsys)
    assert run.exit_code == 0
    assert run.output == _composed_yaml(overrides, package)


def test_cfg_all_shows_hydras_node_and_the_jobs_without_unset_trainer_keys(capsys):
    run = launch(["--cfg", "all"], capsys)
    assert run.exit_code == 0
    assert run.output.startswith("hydra:\n")  # Hydra's node, printed as Hydra prints it
    lines = run.output.splitlines()
    start = lines.index("trainer:") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith(" "))
    assert lines[start:end] == ["  accelerator: auto", "  devices: 1", "  max_epochs: 10",
                                "  num_sanity_val_steps: 0", "  log_every_n_steps: 50",
                                "  enable_model_summary: false"]
