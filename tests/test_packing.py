"""Packing: the seeds of one configuration trained as one network are their solo jobs in
everything but floating-point order, write what the solo jobs write, and resume."""

from __future__ import annotations

import copy
import signal
from collections import OrderedDict
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from support import cli, launch, read_wandb_runs, results_under, signal_at_step
from torch import nn

from downsample_study import load_run
from downsample_study.layout import job_dir_name
from downsample_study.nets.layers import DownsampleLayer
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import available_downsamples, downsample_config
from downsample_study.nets.packed import PackedNet, member_losses, pooled_first, stack_members
from downsample_study.nets.packed_layers import PackedDropout, PackedFlatten
from downsample_study.report.build import write_report
from downsample_study.results import read_epochs
from downsample_study.sweeps.packing import pack_size, plan
from downsample_study.training.module import DownsampleClassifier

SEEDS = (0, 1, 2)
MNIST_MODELS = ("lenet5", "lenet5_nopool", "lenet_gap", "lenet5_classic")


def _member(model: str, operator: str, shape, seed: int):
    """A member's solo network, built as its job builds it, and its generator right after."""
    L.seed_everything(seed, verbose=False)
    net = build_model(model_config(model), downsample_config(operator, batch_norm=True,
                                                             dropout=0.3), shape, 10)
    return net, torch.Generator().set_state(torch.get_rng_state())


# every operator in both memory formats; every model with a pooled, a BlurPool (packed
# depthwise filter) and an APS (one copy per member) point, in the CPU default (NHWC)
@pytest.mark.parametrize("model,operator,channels_last", [
    *(("lenet5", op, layout) for op in available_downsamples() for layout in (False, True)),
    *((m, op, True) for m in MNIST_MODELS[1:] for op in ("maxpool", "blurpool", "aps")),
    ("convpool3", "maxpool", True), ("convpool3", "aps", True), ("allcnn_c", "stride2", True),
    ("allcnn_c", "stride2", False),
    # residual sums, option A's zero channels, both points of a stage
    *(("resnet20", op, True) for op in ("stride2_fold", "blurpool", "aps", "stride2")),
])
def test_the_first_step_of_a_pack_is_each_members_solo_step(model, operator, channels_last):
    """Loss and gradients of every member (BatchNorm and dropout on) equal its solo run's to
    1e-5, dropout masks included: each member draws them from its own generator as solo.
    The deep CIFAR nets run in float64: there the float32 rounding of a grouped and a plain
    convolution, amplified by six BatchNorm layers, reaches 2e-5 (the algorithm is exact).
    So does LIP: its conv starts at zero, and InstanceNorm of a zero map multiplies what
    reaches it by 1/sqrt(eps), about 316."""
    cifar = model in ("convpool3", "allcnn_c") or model.startswith("resnet")
    shape = (3, 32, 32) if cifar else (1, 28, 28)
    dtype = torch.float64 if cifar or operator == "lip" else torch.float32
    members = [_member(model, operator, shape, seed) for seed in SEEDS]
    members = [(net.to(dtype), generator) for net, generator in members]
    packed = PackedNet([copy.deepcopy(net) for net, _ in members], [g for _, g in members])
    packed.to(dtype)
    images = [torch.randn(8, *shape, generator=torch.Generator().manual_seed(s), dtype=dtype)
              for s in SEEDS]
    labels = [torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(9 + s))
              for s in SEEDS]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    solo = []
    for (net, generator), x, y in zip(members, images, labels, strict=True):
        net.to(memory_format=layout)
        torch.set_rng_state(generator.get_state())  # the global state the solo run has here
        loss = F.cross_entropy(net(x.contiguous(memory_format=layout)), y)
        loss.backward()
        solo.append((loss.item(), {n: p.grad for n, p in net.named_parameters()}))
    packed.to(memory_format=layout)
    losses = member_losses(packed(stack_members(images).contiguous(memory_format=layout)),
                           torch.stack(labels, 1))
    losses.sum().backward()
    grads = dict(packed.body.named_parameters())
    for k, (loss, solo_grads) in enumerate(solo):
        assert losses[k].item() == pytest.approx(loss, abs=1e-5)
        for name in packed.solo_parameters:
            key, _ = packed.locate(name, k)
            grad = packed.member_tensor(name, grads[key].grad, k)
            torch.testing.assert_close(grad, solo_grads[name], atol=1e-5, rtol=0)


def test_seeds_of_a_variant_are_packed_up_to_the_size_and_the_rest_run_alone():
    jobs = [[f"downsample={op}", f"seed={s}"] for op in ("maxpool", "stride2") for s in range(5)]
    jobs.append(["downsample=avgpool"])
    launched = plan(jobs, 2)
    packs = [j for j in launched if any(o.startswith("pack.seeds=") for o in j)]
    assert [next(o for o in j if o.startswith("pack.seeds=")) for j in packs] == [
        "pack.seeds=[0,1]", "pack.seeds=[2,3]"] * 2
    alone = [j for j in launched if j not in packs]
    assert alone == [["downsample=maxpool", "seed=4"], ["downsample=stride2", "seed=4"],
                     ["downsample=avgpool"]]
    ids = [o for j in packs for o in j if o.startswith("pack.id=")]
    assert len(set(ids)) == 4 and ids == [o for j in plan(jobs, 2) for o in j
                                          if o.startswith("pack.id=")]  # a re-run: the same


@pytest.mark.parametrize(("seeds", "size", "sizes"),
                         [(10, 8, [5, 5]), (9, 4, [3, 3, 3]), (8, 8, [8]), (7, 3, [3, 3, 1])])
def test_a_variants_seeds_are_packed_in_as_few_packs_of_even_sizes(seeds, size, sizes):
    packs = plan([[f"seed={s}"] for s in range(seeds)], size)
    assert [len(next(o for o in j if o.startswith("pack.seeds=")).split(","))
            if len(j) > 1 else 1 for j in packs] == sizes


JOB = ["trainer.max_epochs=3", "downsample.dropout=0.3", "downsample.batch_norm=true",
       "logger=csv", "seed=0,1,2"]


@pytest.fixture
def job(quick) -> list[str]:
    """3 epochs of 10 steps, BatchNorm and dropout on, the seeds of one variant."""
    return [*quick, *JOB]


@pytest.fixture(scope="module")
def solo(data_dir, tmp_path_factory):
    """The solo sweep of ``job``, run once for the tests that compare with it."""
    root = tmp_path_factory.mktemp("solo")
    quick = [f"paths.data_dir={data_dir}", f"paths.cache_dir={root / 'cache'}",
             "dataset.val_size=100", "dataset.eval_batch_size=128",
             "dataset.verify_checksums=false", "trainer.max_epochs=1", "accelerator=cpu"]
    assert launch(["-m", *quick, *JOB, f"hydra.sweep.dir={root / 'sweep'}"]).exit_code == 0
    return root / "sweep"


def _by_seed(folder) -> dict[int, dict]:
    return {r["config"]["seed"]: r for r in results_under(folder)}


def _assert_same_as_solo(packed: dict[int, dict], solo: dict[int, dict],
                         marked: bool = True) -> None:
    assert packed.keys() == solo.keys()
    for seed, alone in solo.items():
        member = packed[seed]
        assert member["status"] == "completed" and alone["pack"] is None
        assert (member["pack"]["size"] == 3) if marked else member["pack"] is None
        assert member["best_epoch"] == alone["best_epoch"]
        assert member["overrides"] == alone["overrides"] and member["group"] != ""
        # Accuracies equal; losses to 1 %: a conv bias before BatchNorm has a zero gradient
        # but for rounding (which differs with the thread count), which Adam scales to
        # lr-sized steps, and BatchNorm's running mean (the eval-mode loss) follows it
        for split in ("val", "test"):
            for name, value in alone[split].items():
                close = pytest.approx(value, rel=1e-2) if name == "loss" else value
                assert member[split][name] == close, (seed, split, name)
        for padding in ("zero", "circular"):  # over 200 test images: up to two may flip
            shifts = [r["evaluations"]["shift"]["details"][padding] for r in (member, alone)]
            assert shifts[0] == pytest.approx(shifts[1], abs=0.011)


@pytest.mark.xdist_group("packing_solo")  # one worker runs the solo sweep once
@pytest.mark.slow
def test_a_packed_sweep_writes_what_its_solo_jobs_write(job, solo, tmp_path, capsys):
    run = launch(["-m", *job, "hydra/sweeper=packed", "hydra.sweep.dir=packed"], capsys)
    assert run.exit_code == 0, run.output
    assert "3 jobs as 1 job(s), 1 of them packs" in run.output
    assert "3 completed" in run.output
    reports = [write_report(folder, use_wandb=False, draw_plots=False)
               for folder in (solo, tmp_path / "packed")]
    solo_report, packed_report = ([(v.key, v.seeds) for v in r.variants] for r in reports)
    assert packed_report == solo_report and packed_report[0][1] == [0, 1, 2]
    assert not reports[1].unfinished
    notes = [(folder / "report.md").read_text() for folder in (solo, tmp_path / "packed")]
    assert ["reports its pack's" in note for note in notes] == [False, True]
    folders = {p.name for p in solo.iterdir() if p.is_dir()}
    assert folders <= {p.name for p in (tmp_path / "packed").iterdir()}  # the same folders
    _assert_same_as_solo(_by_seed(tmp_path / "packed"), _by_seed(solo))
    for folder in sorted(folders - {".hydra"}):
        member, alone = tmp_path / "packed" / folder, solo / folder
        rows, solo_rows = read_epochs(member), read_epochs(alone)
        assert [r["epoch"] for r in rows] == [1, 2, 3]
        for row, solo_row in zip(rows, solo_rows, strict=True):
            assert row["val/acc_top1"] == pytest.approx(solo_row["val/acc_top1"], abs=1e-4)
            assert row["train/loss_epoch"] == pytest.approx(solo_row["train/loss_epoch"],
                                                            rel=1e-3)  # see above
        assert (member / "feature_maps.png").is_file() and (member / "csv").is_dir()
        reused = load_run(member)  # the member's checkpoint is a solo one
        loaded = DownsampleClassifier.load_from_checkpoint(reused.results.checkpoint)
        assert sum(p.numel() for p in loaded.parameters()) == reused.results.params.total
        solo_weights = load_run(alone).model.state_dict()
        # each weight tensor to 1 % of its norm (measured: up to 0.4 %; another seed's: 140 %):
        # the rounding of a grouped and a plain convolution, which changes with the thread
        # count, flips near-zero gradients, each an lr-sized step under Adam (biases: above)
        for name, weight in reused.model.state_dict().items():
            if name.endswith("weight"):
                solo_weight = solo_weights[name]
                assert (weight - solo_weight).norm() < 1e-2 * solo_weight.norm(), name


def test_each_member_has_its_own_wandb_run_named_as_its_solo_job(quick, tmp_path):
    sweep = ["-m", *quick, "logger=wandb", "seed=0,1", "evaluation.feature_maps.enabled=false"]
    assert launch([*sweep, "hydra/sweeper=packed", "hydra.sweep.dir=packed"]).exit_code == 0
    assert launch([*sweep, "hydra.sweep.dir=solo"]).exit_code == 0
    runs = {f: {job_dir_name(r.name): r for r in read_wandb_runs(tmp_path / f)}
            for f in ("packed", "solo")}
    assert runs["packed"].keys() == runs["solo"].keys() and len(runs["packed"]) == 2
    results = {p.parent.name: r for p, r in zip(sorted((tmp_path / "packed").glob(
        "*/results.json")), results_under(tmp_path / "packed"), strict=True)}
    for name, run in runs["packed"].items():
        assert run.job_type == runs["solo"][name].job_type and run.exit_code == 0
        assert run.group and run.group != runs["solo"][name].group  # its own sweep's group
        logged = {k for row in run.history for k in row}
        assert {"val/acc_top1", "train/loss", "train/loss_epoch"} <= logged
        assert run.summary["test/acc_top1"] == pytest.approx(results[name]["test"]["acc_top1"])


@pytest.mark.xdist_group("packing_solo")  # one worker runs the solo sweep once
@pytest.mark.slow
@pytest.mark.parametrize("resume", ["packed", "alone"])
def test_a_stopped_pack_resumes_packed_or_as_solo_jobs(job, solo, resume, monkeypatch,
                                                        tmp_path, capsys):
    """Stopped in its second epoch, the pack records every member as interrupted; the same
    command resumes the pack, and a sweep without packing resumes each member from its own
    (solo) checkpoint: either way the jobs end as if never stopped."""
    packed = ["-m", *job, "hydra/sweeper=packed", "hydra.sweep.dir=sweep"]
    with monkeypatch.context() as patch:
        signal_at_step(patch, 15, signal.SIGTERM)
        run = launch(packed, capsys)
    assert run.exit_code == 128 + signal.SIGTERM, run.output
    stopped = results_under(tmp_path / "sweep")
    assert [r["status"] for r in stopped] == ["interrupted"] * 3
    assert {r["stopped_at"]["epoch"] for r in stopped} == {2}
    again = packed if resume == "packed" else ["-m", *job, "hydra.sweep.dir=sweep"]
    assert launch(again).exit_code == 0
    _assert_same_as_solo(_by_seed(tmp_path / "sweep"), _by_seed(solo), marked=resume == "packed")


@pytest.mark.parametrize("override,reason", [
    ("trainer.gradient_clip_val=1.0", "clipping by the global gradient norm"),
    ("trainer.devices=2", "a pack trains in one process on one device"),
])
def test_what_would_couple_the_members_is_refused_with_the_reason(job, override, reason,
                                                                  tmp_path, capsys):
    run = launch(["-m", *job, override, "hydra/sweeper=packed", "hydra.sweep.dir=sweep"],
                 capsys)
    assert run.exit_code == 1 and reason in run.output
    assert "Traceback" not in run.output


@pytest.mark.parametrize("args,reason", [
    (["-m", "pack.size=0", "hydra/sweeper=packed"], "pack.size: a number of members >= 1"),
    (["-m", "pack.size=abc", "hydra/sweeper=packed"], "pack.size: a number of members >= 1"),
    (["pack.seeds=[0,1]"], "pack.seeds: set by hydra/sweeper=packed"),
])
def test_bad_packing_input_gets_one_line(quick, args, reason, capsys):
    run = launch([*args, *quick, "logger=none", "seed=0"], capsys)
    assert run.exit_code == 1 and f"error: {reason}" in run.output
    assert "Traceback" not in run.output and "Error executing job" not in run.output


def test_a_pack_size_without_the_packing_sweeper_is_pointed_out(quick, tmp_path, capsys):
    run = launch(["-m", *quick, "logger=none", "mode=summary", "seed=0,1", "pack.size=4",
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 0
    assert "pack.size=4: packs are made by hydra/sweeper=packed" in run.output


@pytest.mark.parametrize("override,reason", [
    ("trainer.fast_dev_run=true", "smoke tests (trainer.fast_dev_run) run alone"),
    ("mode=summary", "mode=summary trains nothing"),
])
def test_smoke_tests_and_layer_tables_are_not_packed(job, override, reason, tmp_path, capsys):
    run = launch(["-m", *job, override, "hydra/sweeper=packed", "hydra.sweep.dir=sweep"],
                 capsys)
    assert run.exit_code == 0 and f"packing: off, {reason}" in run.output
    assert not (tmp_path / "sweep" / "packs").exists()


@pytest.mark.slow
def test_packs_run_side_by_side_under_the_parallel_launcher(quick, tmp_path):
    run = cli(["-m", *quick, "logger=none", "evaluation.feature_maps.enabled=false",
               "downsample=maxpool,avgpool", "seed=0,1", "hydra/sweeper=packed",
               "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=sweep"],
              tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "4 jobs as 2 job(s), 2 of them packs" in output and "4 completed" in output
    results = results_under(tmp_path / "sweep")
    packs = {r["pack"]["id"]: r["config"]["downsample"]["name"] for r in results}
    assert sorted(packs.values()) == ["avgpool", "maxpool"]  # one pack per variant
    assert sorted({r["resources"]["slot"] for r in results}) == [0, 1]  # one slot per pack


class _CudaGenerator:
    """A CUDA generator's stand-in (this machine has no CUDA): it keeps its device and seed."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)

    def manual_seed(self, seed: int) -> _CudaGenerator:
        self.seed = seed
        return self


@pytest.mark.parametrize("device", [torch.device("cuda", 0), torch.device("cuda", 1)])
def test_a_packs_dropout_generators_live_on_the_device_it_trains_on(device, monkeypatch):
    """CUDA's Bernoulli draws refuse a CPU generator: a pack set up on a GPU draws there."""
    module = DownsampleClassifier({"name": "lenet5"}, {"name": "maxpool", "dropout": 0.5},
                                  {"name": "adam"}, [1, 28, 28], 10, seeds=list(SEEDS))
    monkeypatch.setattr(torch, "Generator", _CudaGenerator)
    module.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=device))
    module.setup("fit")
    generators = module.net.generators
    assert [g.device for g in generators] == [device] * len(SEEDS)
    assert len({g.seed for g in generators}) == len(SEEDS)  # each member a stream of its own
    dropouts = [m for m in module.net.modules() if isinstance(m, PackedDropout)]
    assert dropouts and all(d.generators is generators for d in dropouts)


def test_a_diverged_member_is_recorded_as_failed_as_its_solo_job(quick, tmp_path, capsys):
    run = launch(["-m", *quick, "logger=none", "optimizer=sgd", "optimizer.lr=1e6",
                  "downsample.batch_norm=false", "seed=0,1", "hydra/sweeper=packed",
                  "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 1 and "0 completed, 2 failed" in run.output
    for results in results_under(tmp_path / "sweep"):
        assert results["status"] == "failed" and "the run diverged" in results["error"]
        assert results["pack"]["seeds"] == [0, 1]


def test_members_are_measured_as_their_solo_jobs_measure_themselves(quick, tmp_path):
    """The job's own evaluation settings (here: a part of the validation and test sets) hold
    for each member's selected checkpoint, as for the solo job."""
    sweep = ["-m", *quick, "logger=none", "evaluation.feature_maps.enabled=false", "seed=0,1",
             "trainer.limit_val_batches=1", "trainer.limit_test_batches=3",
             "dataset.eval_batch_size=50"]
    assert launch([*sweep, "hydra/sweeper=packed", "hydra.sweep.dir=packed"]).exit_code == 0
    assert launch([*sweep, "hydra.sweep.dir=solo"]).exit_code == 0
    packed, alone = _by_seed(tmp_path / "packed"), _by_seed(tmp_path / "solo")
    for seed in (0, 1):
        for split in ("val", "test"):  # 50 and 150 images
            assert packed[seed][split]["acc_top1"] == alone[seed][split]["acc_top1"]


def _relu_pool_input() -> torch.Tensor:
    """Maps with every kind of window: all negative, ties at zero and above it (a constant
    background, as a conv's bias gives), a NaN, and plain values."""
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x[0, :, :4, :4] = -1.0
    x[1, :, :4, :4] = 0.0
    x[2, :, :4, :4] = 0.25
    x[3, 0, 0, 0] = float("nan")
    return x


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d(2, ceil_mode=True),
    DownsampleLayer(nn.MaxPool2d(2))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_relu_before_a_max_pool_moves_after_it_bit_for_bit(pool, channels_last):
    layers = OrderedDict(conv=nn.Conv2d(3, 4, 3, padding=1), relu=nn.ReLU(), pool=pool,
                         again=nn.ReLU(), flat=nn.Flatten())
    written = nn.Sequential(layers)
    rewritten = nn.Sequential(pooled_first(layers))
    assert list(rewritten._modules) == ["conv", "pool", "relu", "flat"]  # ReLU∘ReLU = ReLU
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = _relu_pool_input().contiguous(memory_format=layout)
    outputs, grads = [], []
    for net in (written, rewritten):
        net.zero_grad()
        out = net(x)
        out.nan_to_num().sum().backward()
        outputs.append(out)
        grads.append([p.grad.clone() for p in net.parameters()])
    assert torch.equal(outputs[0].nan_to_num(), outputs[1].nan_to_num())
    assert outputs[0].isnan().equal(outputs[1].isnan())
    for written_grad, rewritten_grad in zip(*grads, strict=True):
        assert torch.equal(written_grad.nan_to_num(), rewritten_grad.nan_to_num())


@pytest.mark.parametrize("layers,order", [
    ((nn.ReLU(), nn.AvgPool2d(2)), ["0", "1"]),  # max(relu) = relu(max) holds for max only
    ((nn.GELU(), nn.MaxPool2d(2)), ["0", "1"]),  # not monotone
    ((nn.ReLU(), nn.MaxPool2d(2, return_indices=True)), ["0", "1"]),
    ((nn.ReLU(), DownsampleLayer(nn.MaxPool2d(2), nn.BatchNorm2d(3))), ["0", "1"]),
    ((nn.ReLU(), nn.MaxPool2d(2), nn.MaxPool2d(2)), ["1", "2", "0"]),
])
def test_only_a_relu_right_before_a_max_pool_alone_moves(layers, order):
    assert list(pooled_first(OrderedDict((str(i), m) for i, m in enumerate(layers)))) == order


def test_a_packed_flatten_gives_its_gradient_back_in_the_maps_memory_format():
    x = torch.randn(2, 6, 3, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = PackedFlatten(3)(x)
    assert torch.equal(out, x.reshape(2, 3, -1))  # each member's features in solo order
    out.backward(torch.arange(out.numel(), dtype=torch.float).reshape(out.shape))
    assert x.grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x.grad, torch.arange(x.numel(), dtype=torch.float).reshape(x.shape))


@pytest.mark.parametrize("model,operator", [("lenet5", "maxpool"), ("lenet5", "aps"),
                                            ("resnet20", "blurpool")])
def test_a_members_solo_state_loads_into_its_place_in_the_pack(model, operator):
    shape = (3, 32, 32) if model.startswith("resnet") else (1, 28, 28)
    members = [_member(model, operator, shape, seed) for seed in SEEDS]
    pack = PackedNet([net for net, _ in members], [g for _, g in members])
    other = _member(model, operator, shape, 7)[0].state_dict()
    before = [pack.member_state(k) for k in range(len(SEEDS))]
    pack.load_member_state(1, other)
    after = [pack.member_state(k) for k in range(len(SEEDS))]
    for key, value in other.items():
        if value.dim() > 0:  # a scalar (BatchNorm's batch count) is the pack's own
            assert torch.equal(after[1][key], value), key
        for k in (0, 2):  # the others untouched
            assert torch.equal(after[k][key], before[k][key]), key


def test_each_member_is_scored_on_its_selected_checkpoint_not_the_packs_last_weights(
        quick, tmp_path):
    """The pack scores its members together, each with the weights of its best epoch: the
    val loss recorded then, re-measured from its checkpoint, not the last epoch's."""
    sweep = ["-m", *quick, "logger=none", "evaluation=none", "trainer.max_epochs=4",
             "optimizer.lr=0.02", "seed=0,1,2", "hydra/sweeper=packed", "hydra.sweep.dir=sweep"]
    assert launch(sweep).exit_code == 0
    earlier = 0
    for r in results_under(tmp_path / "sweep"):
        rows = {row["epoch"]: row for row in read_epochs(tmp_path / "sweep" / r["overrides"])}
        best, last = rows[r["best_epoch"]], rows[4]
        assert r["val"]["acc_top1"] == best["val/acc_top1"]
        assert r["val"]["loss"] == pytest.approx(best["val/loss"], rel=1e-4, abs=1e-9)
        earlier += r["val"]["loss"] != pytest.approx(last["val/loss"], rel=1e-4, abs=1e-9)
    assert earlier  # the premise: a member peaked before the last epoch, with another loss


def test_a_cpu_pack_evaluates_a_large_batch_in_parts_to_the_same_metrics(monkeypatch):
    from downsample_study.training import module as classifier

    pack = DownsampleClassifier(model={"name": "lenet5"}, downsample={"name": "maxpool"},
                                optimizer={"name": "adam"}, input_shape=[1, 28, 28],
                                num_classes=10, seeds=[0, 1, 2]).eval()
    batch = torch.randn(50, 1, 28, 28), torch.randint(0, 10, (50,))
    passes = []
    pack.net.register_forward_pre_hook(lambda net, args: passes[-1].append(len(args[0])))
    metrics = []
    for images in (10**9, 30):  # one pass, then parts of 10 images (x 3 members)
        monkeypatch.setattr(classifier, "PACK_EVAL_IMAGES", images)
        passes.append([])
        with torch.inference_mode():
            pack.validation_step(batch, 0)
        metrics.append([metric.compute() for metric in (*pack.val_loss, *pack.val_acc)])
        for metric in (*pack.val_loss, *pack.val_acc):
            metric.reset()
    assert passes == [[50], [10] * 5]
    torch.testing.assert_close(metrics[1], metrics[0])


@pytest.mark.parametrize(("epochs", "lr", "val_passes"), [
    (2, 1e-3, 1),  # every member peaks at its last epoch: its val metrics are from then
    (4, 0.02, 2),  # one peaked earlier: the pack validates the selected weights again
])
def test_a_pack_validates_again_only_members_that_peaked_before_the_last_epoch(
        epochs, lr, val_passes, quick, tmp_path, monkeypatch):
    passes = []
    validate = L.Trainer.validate
    monkeypatch.setattr(L.Trainer, "validate", lambda trainer, *args, **kw: (
        passes.append(trainer.state.fn), validate(trainer, *args, **kw))[1])
    sweep = ["-m", *quick, "logger=none", "evaluation=none", f"trainer.max_epochs={epochs}",
             f"optimizer.lr={lr}", "seed=0,1,2", "hydra/sweeper=packed", "hydra.sweep.dir=sweep"]
    assert launch(sweep).exit_code == 0
    results = results_under(tmp_path / "sweep")
    peaked_last = [r["best_epoch"] == epochs for r in results]
    assert all(peaked_last) == (val_passes == 1)  # the premise
    assert len(passes) == val_passes  # after training; fit's own validations are not calls
    for r in results:
        row = next(row for row in read_epochs(tmp_path / "sweep" / r["overrides"])
                   if row["epoch"] == r["best_epoch"])
        assert r["val"]["acc_top1"] == row["val/acc_top1"]
        assert r["val"]["loss"] == pytest.approx(row["val/loss"], rel=1e-6)


@pytest.mark.parametrize(("accelerator", "flops", "expected"), [
    ("cpu", 0.83e6, 8), ("cpu", 19.9e6, 8), ("cpu", 20e6, 1), ("cpu", 410e6, 1),
    ("cpu", None, 8),  # a network that does not build: its job says why
    ("gpu", 410e6, 32), ("cuda", 0.83e6, 32)])
def test_auto_packs_on_cpu_only_networks_that_packing_speeds_up(accelerator, flops, expected):
    assert pack_size("auto", accelerator, flops) == expected
    assert pack_size("3", accelerator, flops) == 3  # a number is kept, whatever the network


def test_a_plan_sizes_each_variants_packs_on_its_own():
    jobs = [[f"model={m}", f"seed={s}"] for m in ("lenet5", "resnet20") for s in range(4)]
    launched = plan(jobs, lambda overrides: 1 if "model=resnet20" in overrides else 4)
    assert [len(j) for j in launched] == [5, 2, 2, 2, 2]  # one pack of 4, then 4 alone


def test_an_auto_sweep_on_cpu_trains_a_resnet_alone_and_packs_lenet(quick, tmp_path, capsys):
    run = launch(["-m", *quick, "logger=none", "evaluation=none", "model=lenet5,resnet20",
                  "downsample=stride2", "seed=0,1", "trainer.limit_train_batches=1",
                  "hydra/sweeper=packed", "hydra.sweep.dir=sweep"], capsys)
    assert run.exit_code == 0, run.output
    assert "packing: off for model=resnet20 downsample=stride2, 82 MFLOP per image" in run.output
    packs = {(r["config"]["model"]["name"], r["config"]["seed"]): r["pack"]
             for r in results_under(tmp_path / "sweep")}
    assert packs[("resnet20", 0)] is None and packs[("resnet20", 1)] is None
    assert packs[("lenet5", 0)]["seeds"] == [0, 1]
