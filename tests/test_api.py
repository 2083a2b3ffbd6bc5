"""After the sweep, from Python: a run loads with its config, results and network; its
checkpoint evaluates to the numbers it recorded; a sweep is one table; a config composes
without setup; the module loads from a checkpoint alone; mode=eval measures a job again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from support import launch, results_under

import downsample_study as ds
from downsample_study.errors import ConfigError, ResultsError
from downsample_study.training.module import DownsampleClassifier

# one worker trains the module's sweep once, for every test that reads it (pytest-xdist)
pytestmark = pytest.mark.xdist_group("api_sweep")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, data_dir):
    """Two finished jobs (maxpool, avgpool; 2 epochs) in a sweep folder."""
    root = tmp_path_factory.mktemp("api")
    cache = root / "cache"
    assert launch(["-m", f"paths.data_dir={data_dir}", f"paths.cache_dir={cache}",
                   "dataset.val_size=100", "dataset.eval_batch_size=128",
                   "trainer.max_epochs=2", "accelerator=cpu", "logger=none",
                   "evaluation.feature_maps.enabled=false", "downsample=maxpool,avgpool",
                   f"hydra.sweep.dir={root / 'sweep'}"]).exit_code == 0
    return root / "sweep"


def job_folder(sweep, operator: str):
    [folder] = sweep.glob(f"*downsample={operator}*")
    return folder


@pytest.mark.parametrize("named_by", ["folder", "results.json", "checkpoint"])
def test_a_run_loads_with_its_config_results_and_network(named_by, sweep):
    folder = job_folder(sweep, "maxpool")
    run = ds.load_run({"folder": folder, "results.json": folder / "results.json",
                       "checkpoint": next(folder.glob("checkpoints/best-*.ckpt"), None)}[named_by])
    assert run.config.downsample.name == "maxpool" and run.config.trainer.max_epochs == 2
    assert run.results.completed and run.results.best_epoch in (1, 2)
    assert run.folder == folder
    model = run.model
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_its_predictions_on_the_raw_test_images_score_what_it_recorded(sweep, data_dir,
                                                                       tmp_path):
    """uint8 images as the dataset stores them, normalised by predict as in training."""
    from downsample_study.data.batches import TensorBatches
    from downsample_study.data.datasets import DATASETS, load_splits

    run = ds.load_run(job_folder(sweep, "maxpool"))
    _, test = load_splits(run.config.dataset, data_dir, tmp_path)
    probabilities = run.predict(test.images)
    mnist = DATASETS["mnist"]
    [(tested, _)] = TensorBatches(test, len(test), mnist.mean, mnist.std)  # the test pass's
    with torch.inference_mode():
        assert torch.equal(probabilities, run.model(tested).softmax(dim=1))
    accuracy = (probabilities.argmax(dim=1) == test.labels).float().mean().item()
    assert accuracy == pytest.approx(run.results.test.acc_top1, abs=1e-6)


def test_its_classes_name_the_columns_of_its_predictions(sweep):
    from torchvision import datasets

    run = ds.load_run(job_folder(sweep, "maxpool"))
    assert run.classes == datasets.MNIST.classes  # "0 - zero", ...
    assert len(run.classes) == run.predict(torch.zeros(1, 28, 28)).shape[1]


def _pil(batch):
    from PIL import Image

    return [Image.fromarray(image[0].numpy()) for image in batch]


@pytest.mark.parametrize(("form", "rows"), [
    (lambda x: x[0], 1),                       # one image, C×H×W
    (lambda x: x[0, 0], 1),                    # one image, no channel axis
    (lambda x: x[:, 0], 3),                    # a batch, no channel axis
    (lambda x: x.permute(0, 2, 3, 1), 3),      # channels last
    (lambda x: x.numpy(), 3),
    (lambda x: list(x), 3),                    # a list of tensors
    (lambda x: x.float() / 255, 3),            # ToTensor's [0, 1]
    (lambda x: _pil(x)[0], 1),
    (_pil, 3),
])
def test_predict_takes_images_in_the_forms_a_notebook_has_them(sweep, form, rows):
    run = ds.load_run(job_folder(sweep, "maxpool"))
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    assert torch.allclose(run.predict(form(images)), run.predict(images)[:rows], atol=1e-6)


@pytest.mark.parametrize(("images", "message"), [
    (torch.zeros(2, 3, 28, 28, dtype=torch.uint8),
     "images of shape 2×3×28×28: a network of dataset 'mnist' takes N×1×28×28"),
    (torch.full((2, 1, 28, 28), 255.0),
     "float images in [255, 255]: expected [0, 1], to be normalised here; images normalised "
     "already go to the network itself (run.model)"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.int32), "images of dtype torch.int32: expected"),
    ([torch.zeros(28, 28, dtype=torch.uint8), torch.zeros(32, 32, dtype=torch.uint8)],
     "images of different shapes in one list: 28×28, 32×32"),
])
def test_predict_names_what_is_wrong_with_the_images(sweep, images, message):
    run = ds.load_run(job_folder(sweep, "maxpool"))
    with pytest.raises(ValueError, match=re.escape(message)):
        run.predict(images)


@pytest.mark.parametrize(("device", "message"), [
    ("gpu", "device: 'gpu' is not a torch device"),
    ("cuda:7", "device: 'cuda:7', but this machine has"),
    ("meta", "device: 'meta', but this machine has 0 meta devices; load onto 'cpu'"),
])
def test_a_device_this_machine_lacks_is_named_before_anything_loads(sweep, device, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        ds.load_run(job_folder(sweep, "maxpool"), device=device)


@pytest.mark.parametrize(("kept", "hint"), [
    ("all", None),
    # last.ckpt is there, but it is not the checkpoint the results are of
    ("last", "to load another, name it: load_run('<job>/checkpoints/last.ckpt')"),
    ("none", "the folder has no checkpoint (a sweep's record keeps none): load the job from "
             "the sweep folder that trained it"),
])
def test_a_moved_job_loads_its_own_selected_checkpoint_never_another(sweep, tmp_path, kept,
                                                                     hint):
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(job_folder(sweep, "maxpool"), moved)
    results = json.loads((moved / "results.json").read_text())
    best = Path(results["checkpoint"]).name
    results["checkpoint"] = f"/elsewhere/{best}"  # where it was written: gone
    (moved / "results.json").write_text(json.dumps(results))
    for name in {"all": [], "last": [best], "none": [best, "last.ckpt"]}[kept]:
        (moved / "checkpoints" / name).unlink()
    if hint is None:
        assert ds.load_run(moved).checkpoint == moved / "checkpoints" / best
    else:
        with pytest.raises(ResultsError, match=re.escape(
                f"its selected checkpoint, {best}, is neither in checkpoints/ nor at "
                f"/elsewhere/{best}; {hint}")):
            _ = ds.load_run(moved).checkpoint


@pytest.mark.parametrize("split", ["test", "val"])
def test_a_run_evaluates_to_the_numbers_it_recorded(split, sweep, capfd, caplog):
    run = ds.load_run(job_folder(sweep, "avgpool"))
    measured = run.evaluate(split)
    recorded = vars(getattr(run.results, split))
    assert measured == pytest.approx(recorded, rel=1e-6)  # the same checkpoint, data, order
    printed = capfd.readouterr()  # a notebook cell shows the result only
    assert printed.out + printed.err == ""
    assert [r.getMessage() for r in caplog.records if r.name.startswith("lightning")] == []


def test_a_sweep_is_one_row_per_job(sweep):
    table = ds.load_sweep(sweep)
    assert len(table) == 2 and set(table["status"]) == {"completed"}
    assert sorted(table["config.downsample.name"]) == ["avgpool", "maxpool"]
    assert (table["test.acc_top1"] > 0.5).all() and (table["params.total"] == 61_706).all()


@pytest.mark.parametrize("running", [True, False])
def test_a_job_without_results_is_a_row_saying_whether_it_runs_now(tmp_path, running):
    import contextlib

    from downsample_study.runtime.locks import job_lock

    job = tmp_path / "sweep" / "downsample=maxpool,seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- downsample=maxpool\n- seed=0\n")
    with job_lock(job) if running else contextlib.nullcontext():
        [status] = ds.load_sweep(tmp_path / "sweep")["status"]
    assert status == ("running" if running else "not run")


def test_a_config_composes_validated_without_setup():
    cfg = ds.compose(["downsample=stride2", "downsample.kernel_size=5"])
    assert cfg.downsample.name == "stride2" and cfg.downsample.kernel_size == 5
    with pytest.raises(ConfigError, match=r"downsample\.kernel_sise: no such key"):
        ds.compose(["downsample.kernel_sise=3"])
    with pytest.raises(ConfigError, match=r"dataset\.val_size: must be >= 1"):
        ds.compose(["dataset.val_size=0"])
    assert ds.compose("downsample=stride2").downsample.name == "stride2"  # one, as a string
    with pytest.raises(ConfigError, match=r"overrides: expected strings .*, got 1 \(int\)"):
        ds.compose(["downsample=stride2", 1])


def test_the_module_loads_from_its_checkpoint_alone(sweep):
    checkpoint = ds.load_run(job_folder(sweep, "maxpool")).checkpoint
    held = torch.load(checkpoint, weights_only=True)  # plain data: torch's safe loader
    assert held["hyper_parameters"]["downsample"]["name"] == "maxpool"
    module = DownsampleClassifier.load_from_checkpoint(checkpoint)
    assert module.summary.params_total == 61_706
    assert torch.equal(module.net.conv1.weight, held["state_dict"]["net.conv1.weight"])


def test_mode_eval_measures_a_job_again_without_training(sweep, data_dir, tmp_path, capsys):
    folder = job_folder(sweep, "maxpool")
    [recorded] = results_under(folder)
    # a job folder's name holds = and ,: quoted, as a shell user quotes it too
    run = launch(["mode=eval", f'checkpoint="{folder}"', f"paths.data_dir={data_dir}",
                  f"paths.cache_dir={tmp_path / 'cache'}", "hydra.run.dir=again"], capsys)
    assert run.exit_code == 0
    line = (f"test, on the checkpoint of epoch {recorded['best_epoch']} (val acc_top1 "
            f"{recorded['val']['acc_top1']:.4f}): acc_top1 {recorded['test']['acc_top1']:.4f}")
    assert line in run.output
    again = json.loads((tmp_path / "again" / "evaluation.json").read_text())
    assert again["test"] == pytest.approx(recorded["test"], rel=1e-6)
    assert again["evaluations"]["shift"]["details"] == (
        recorded["evaluations"]["shift"]["details"])
    assert (tmp_path / "again" / "feature_maps.png").is_file()
    assert not (tmp_path / "again" / "checkpoints").exists()  # nothing trained


@pytest.mark.parametrize(("checkpoint", "message"), [
    (None, "checkpoint: mode=eval evaluates a finished job"),
    ("nowhere", "nowhere: no such file or folder (pass a job's folder, or one of its .ckpt"),
    ("sweep/downsample=maxpool,seed=0", "quote a value that holds '=' or ','"),
])
def test_mode_eval_without_a_job_is_one_line(checkpoint, message, capsys):
    args = ["mode=eval", "hydra.run.dir=again"] + ([f"checkpoint={checkpoint}"] if checkpoint
                                                   else [])
    run = launch(args, capsys)
    assert run.exit_code != 0 and message in run.output and "Traceback" not in run.output


@pytest.mark.parametrize(("where", "message"), [
    ("sweep/packs/seeds0-1-x/checkpoints/last.ckpt",
     "a pack's checkpoint, every member's network in one; pass a member's job folder"),
    ("sweep", "not a job's folder or checkpoint (no "),
    ("sweep/multirun.yaml", "multirun.yaml: not a job's folder, results.json or checkpoint; "
                            "pass a job's folder, its results.json, or one of its .ckpt"),
])
def test_what_is_not_one_jobs_run_is_named_with_what_to_pass(where, message, tmp_path):
    path = tmp_path / where
    (path.parent if path.suffix else path).mkdir(parents=True)
    if path.suffix:
        path.write_bytes(b"")
    with pytest.raises(ResultsError, match=re.escape(message)):
        ds.load_run(path)


@pytest.mark.parametrize(("where", "message"), [
    ("nowhere", "nowhere: no such folder (pass a sweep folder"),
    ("a_file", "a_file: a file, not a folder (pass a sweep folder"),
    ("empty", "empty: not a sweep folder (no multirun.yaml and no job folders in it)"),
])
def test_a_folder_that_is_no_sweep_is_named_not_read_as_an_empty_one(where, message, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("results\n")
    with pytest.raises(ResultsError, match=re.escape(message)):
        ds.load_sweep(tmp_path / where)


@pytest.mark.parametrize("load", [ds.load_run, ds.load_sweep])
@pytest.mark.parametrize("value", [None, 3, ""])
def test_a_path_that_is_no_path_is_named(load, value):
    with pytest.raises(ResultsError, match=re.escape(f"(a str or Path), got {value!r} (")):
        load(value)


@pytest.mark.parametrize("running", [True, False])
def test_a_job_that_did_not_complete_says_so_and_loads_from_a_checkpoint_named(sweep, tmp_path,
                                                                               running):
    import contextlib
    import shutil

    from downsample_study.runtime.locks import job_lock

    job = tmp_path / "job"
    shutil.copytree(job_folder(sweep, "avgpool"), job)
    (job / "results.json").unlink()  # killed after its last epoch, or running still
    with job_lock(job) if running else contextlib.nullcontext():
        with pytest.raises(ResultsError, match="is still running" if running else
                           r"did not complete \(no results.json\)"):
            ds.load_run(job)
        run = ds.load_run(job / "checkpoints" / "last.ckpt")
    assert run.results is None and run.config.downsample.name == "avgpool"
    assert run.model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
