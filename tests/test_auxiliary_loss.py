"""An operator that adds a term to the training objective (TIPS's regularisers): the term is
trained on and logged as train/aux_loss, per member in a pack exactly as its solo job's."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from support import csv_rows, launch
from torch import nn

from downsample_study.nets.auxiliary import AuxiliaryLoss, auxiliary_losses
from downsample_study.nets.downsample_configs import DOWNSAMPLES
from downsample_study.nets.layers import DownsampleLayer
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config, register_downsample
from downsample_study.nets.packed import (
    PackedNet,
    member_losses,
    stack_members,
)
from downsample_study.nets.points import Downsample

WEIGHT = 0.5
NAME = "penalised"


class Penalised(AuxiliaryLoss):
    """Keeps every other row and column; in training, adds WEIGHT × the mean square it keeps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x[..., ::2, ::2]
        if self.training:
            self.loss = WEIGHT * out.pow(2).mean()
        return out


def _penalised(cfg, point) -> Downsample:
    return Downsample(conv_stride=1, layer=DownsampleLayer(Penalised()))


def _member(seed: int) -> tuple[nn.Module, torch.Generator]:
    L.seed_everything(seed, verbose=False)
    net = build_model(model_config("lenet5"), downsample_config("maxpool"), (1, 28, 28), 10)
    for name, module in list(net.named_children()):
        if isinstance(module, DownsampleLayer):
            setattr(net, name, DownsampleLayer(Penalised()))
    return net, torch.Generator().set_state(torch.get_rng_state())


def test_a_pack_adds_each_members_term_to_its_own_loss_as_its_solo_step():
    members = [_member(seed) for seed in (0, 1)]
    packed = PackedNet([copy.deepcopy(net) for net, _ in members], [g for _, g in members])
    images = [torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(s))
              for s in (0, 1)]
    labels = [torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(s))
              for s in (2, 3)]
    logits = packed(stack_members(images))
    added = auxiliary_losses(packed, 2)
    assert added.shape == (2,) and auxiliary_losses(packed, 2) is None  # taken once
    (member_losses(logits, torch.stack(labels, 1)) + added).sum().backward()
    grads = dict(packed.body.named_parameters())
    for k, ((net, _), x, y) in enumerate(zip(members, images, labels, strict=True)):
        logits_k = net(x)
        term = auxiliary_losses(net, 1)
        # two points, after conv1's ReLU and after conv2 (seed 000's LeNet has none there),
        # each keeping every other row and column
        maps = [net.relu1(net.conv1(x))[..., ::2, ::2]]
        maps.append(net.conv2(net.relu1b(maps[0]))[..., ::2, ::2])
        assert term.item() == pytest.approx(sum(WEIGHT * m.pow(2).mean().item() for m in maps),
                                            rel=1e-5)
        assert added[k].item() == pytest.approx(term.item(), rel=1e-5)
        (F.cross_entropy(logits_k, y) + term).backward()
        for name, parameter in net.named_parameters():
            key, _ = packed.locate(name, k)
            torch.testing.assert_close(packed.member_tensor(name, grads[key].grad, k),
                                       parameter.grad, atol=1e-5, rtol=0)


def test_evaluation_adds_nothing():
    net, _ = _member(0)
    net.eval()(torch.randn(2, 1, 28, 28))
    assert auxiliary_losses(net, 1) is None


@pytest.fixture
def plugin(monkeypatch, tmp_path):
    """The ``penalised`` operator, registered for this test only, with its YAML."""
    monkeypatch.setattr(DOWNSAMPLES, "builders", dict(DOWNSAMPLES.builders))
    monkeypatch.setattr(DOWNSAMPLES, "schemas", dict(DOWNSAMPLES.schemas))
    register_downsample(NAME)(_penalised)
    conf = tmp_path / "my_conf" / "downsample"
    conf.mkdir(parents=True)
    (conf / f"{NAME}.yaml").write_text(f"defaults:\n  - /schema_downsample_{NAME}@_here_\n")
    return f"hydra.searchpath=[file://{conf.parent}]"


def test_the_term_is_logged_per_member_as_its_solo_jobs(plugin, quick, tmp_path):
    common = ["-m", *quick, plugin, f"downsample={NAME}", "model=lenet5", "logger=csv",
              "trainer.limit_train_batches=4", "trainer.log_every_n_steps=1",
              "evaluation.shift.enabled=false", "evaluation.feature_maps.enabled=false"]
    assert launch([*common, "seed=0", "hydra.sweep.dir=solo"]).exit_code == 0
    assert launch([*common, "seed=0,1", "hydra/sweeper=packed",
                   "hydra.sweep.dir=packed"]).exit_code == 0

    def logged(folder) -> list[float]:
        [metrics] = folder.glob("*/csv/metrics.csv") if folder.name != "packed" else [
            next(folder.glob("*seed=0*")) / "csv" / "metrics.csv"]
        return [float(r["train/aux_loss"]) for r in csv_rows(metrics) if r.get("train/aux_loss")]

    solo, packed = logged(tmp_path / "solo"), logged(tmp_path / "packed")
    assert len(solo) == 4 and all(value > 0 for value in solo)
    assert packed == pytest.approx(solo, rel=1e-4)
    seed1 = next((tmp_path / "packed").glob("*seed=1*")) / "csv" / "metrics.csv"
    assert [r["train/aux_loss"] for r in csv_rows(seed1) if r.get("train/aux_loss")]
