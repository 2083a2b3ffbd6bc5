"""Typed configs: every mistake stops at start-up, naming the key and what is allowed."""

from __future__ import annotations

import pytest
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
        ("logger.mode=sometimes", ["logger.mode", "offline"]),
        # a name set on its own: the node's keys must fit the schema that name selects
        ("downsample.name=stride2", ["downsample.stride: no such key", "kernel_size"]),
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
        (["logger=csv", "logger.project=x"], "logger.project: no such key"),
        (["dataset=cifar10", "dataset.augmnet=true"],
         "dataset.augmnet: no such key (did you mean augment?)"),
        (["downsample=nope"], "downsample=nope: no such option; allowed: aps, avgpool"),
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


def test_help_lists_the_groups_to_choose_from_and_not_the_schemas(capsys):
    run = launch(["--help"], capsys)
    assert run.exit_code == 0
    groups = run.output.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "downsample: aps, avgpool, blurpool" in groups and "schema" not in groups
