"""LPS and TIPS against their authors' code, and their circular-shift (in)variance."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from support import csv_rows, launch, results_under
from support.references import lps as lps_reference
from support.references import tips as tips_reference

from downsample_study.evaluations.shift import shift_images
from downsample_study.nets.layers import Residual
from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config
from downsample_study.nets.operators.polyphase import (
    LearnedPolyphaseSampling,
    TranslationInvariantPolyphaseSampling,
)

SIZES = [(8, 8), (9, 9), (7, 10), (6, 3)]  # the reference pads odd sides, as the layers do


def _lps_pair(channels: int = 3, hidden: int = 5, tau: float = 1.0, padding: str = "circular"):
    """Our LPS layer and the reference's, float64, the same weights."""
    ours = LearnedPolyphaseSampling(channels, hidden, tau, padding).double()
    theirs = lps_reference.PolyphaseInvariantDown2D(
        in_channels=channels, hid_channels=hidden, logits_pad=padding, tau=tau).double()
    theirs.load_state_dict(dict(zip(theirs.state_dict(), ours.state_dict().values(),
                                    strict=True)))
    return ours, theirs


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_lps_in_evaluation_keeps_the_references_phase(size, padding):
    torch.manual_seed(0)
    ours, theirs = (m.eval() for m in _lps_pair(padding=padding))
    x = torch.randn(6, 3, *size, dtype=torch.float64)
    expected, logits = theirs(x, ret_prob=True)
    torch.testing.assert_close(ours(x), expected, rtol=0, atol=0)
    assert torch.equal(ours.chosen, logits.argmax(dim=1))


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_lps_in_training_mixes_as_the_reference_draw_for_draw(size, tau):
    """The same Gumbel draws from torch's generator: the same mix and the same gradients."""
    torch.manual_seed(0)
    ours, theirs = _lps_pair(tau=tau)
    x = torch.randn(6, 3, *size, dtype=torch.float64)
    grads = []
    for layer in (ours, theirs):
        torch.manual_seed(1)
        xi = x.clone().requires_grad_()
        out = layer(xi)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads.append([out, xi.grad, *(p.grad for p in layer.parameters())])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    assert ours.chosen.shape == (6, 4) and not torch.equal(ours(x), ours(x))  # fresh draws


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_lps_shortcut_takes_the_bodys_choice_as_the_reference_shortcut(training):
    """``Residual`` hands the body's choice (its draw in training) to the shortcut's layer,
    as the reference's ``BasicBlockCustom`` passes ``prob`` to its logit-less shortcut pool."""
    torch.manual_seed(0)
    body, body_ref = (m.train(training) for m in _lps_pair(channels=4))
    shortcut = LearnedPolyphaseSampling(2).double().train(training)
    shortcut_ref = lps_reference.PolyphaseInvariantDown2D(
        in_channels=2, use_get_logits=False).double().train(training)
    x, short_in = (torch.randn(5, c, 10, 10, dtype=torch.float64) for c in (4, 2))
    torch.manual_seed(1)
    body(x)
    shortcut.given = body.chosen
    torch.manual_seed(1)
    _, prob = body_ref(x, ret_prob=True)
    expected = shortcut_ref(short_in, prob=prob[0] if training else prob)
    torch.testing.assert_close(shortcut(short_in), expected, rtol=0, atol=1e-15)
    torch.manual_seed(2)
    shortcut.given = None
    assert not torch.allclose(shortcut(short_in), expected)  # its own choice would differ


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_an_lps_resnets_shortcuts_learn_nothing_and_every_parameter_gets_a_gradient(shortcut):
    """Like the reference's logit-less shortcut pool: no idle logits network, which would
    also stop DDP (a parameter without a gradient) and inflate params/downsample."""
    torch.manual_seed(0)
    net = build_model(model_config("resnet20", shortcut=shortcut), downsample_config("lps"),
                      (3, 16, 16), 10)
    layers = [m for m in net.modules() if isinstance(m, LearnedPolyphaseSampling)]
    followers = [m for name, m in net.named_modules() if ".shortcut." in f".{name}."
                 and isinstance(m, LearnedPolyphaseSampling)]
    assert len(layers) == 4 and len(followers) == 2
    assert all(m.logits is None for m in followers)
    net(torch.randn(4, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_lps_evaluation_is_deterministic_and_training_draws_differ_by_seed():
    torch.manual_seed(0)
    layer, _ = _lps_pair(tau=10.0)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append(layer.train()(x))
    assert torch.equal(draws[0], draws[1]) and not torch.allclose(draws[0], draws[2])
    layer.eval()
    assert torch.equal(layer(x), layer(x))


@pytest.mark.parametrize("shift", [(1, 0), (0, 1), (1, 1), (3, 6), (7, 5)])
def test_lps_output_of_a_circular_shift_is_a_circular_shift(shift):
    torch.manual_seed(0)
    layer = LearnedPolyphaseSampling(3).double().eval()
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    out, shifted = layer(x), layer(torch.roll(x, shift, dims=(2, 3)))
    for a, b in zip(out, shifted, strict=True):  # each sample: some roll of its own output
        assert any(torch.allclose(torch.roll(a, (i, j), dims=(1, 2)), b, rtol=0, atol=1e-12)
                   for i in range(6) for j in range(6))


def _moved(net, x) -> float:
    """The largest change of a logit under a few circular shifts of the input."""
    logits = net(x)
    return max((net(shift_images(x, torch.tensor([shift] * len(x)), "circular")) - logits)
               .abs().max().item() for shift in [(0, 1), (1, 0), (3, -2), (-1, -1)])


@pytest.mark.parametrize(("model", "options", "operator", "invariant"), [
    ("lenet_gap", {}, {"name": "lps"}, True),
    ("lenet_gap", {}, {"name": "lps", "pool": "none"}, True),
    ("resnet20", {"shortcut": "A"}, {"name": "lps", "batch_norm": True}, True),
    ("resnet20", {"shortcut": "B"}, {"name": "lps", "pool": "none", "batch_norm": True}, True),
    # TIPS weighs the phases by 2x2 quadrant averages: a shift changes the weights, not only
    # their order, and its paper claims no exact invariance
    ("lenet_gap", {}, {"name": "tips"}, False),
], ids=["lenet_gap-lps", "lenet_gap-lps-none", "resnet20A-lps", "resnet20B-lps-none",
        "lenet_gap-tips"])
def test_in_the_aps_regime_logits_are_invariant_to_circular_shifts_as_the_paper_claims(
    model, options, operator, invariant
):
    torch.manual_seed(0)
    config = downsample_config(**operator)
    shape = (1, 28, 28) if model == "lenet_gap" else (3, 32, 32)
    net = build_model(model_config(model, padding_mode="circular", **options), config,
                      shape, 10).double().eval()
    moved = _moved(net, torch.randn(4, *shape, dtype=torch.float64))
    assert type(config).shift_invariant == invariant
    assert (moved < 1e-9) == invariant, moved


def test_an_lps_resnet_whose_shortcut_chose_its_own_phase_would_not_be_invariant():
    torch.manual_seed(0)
    net = build_model(model_config("resnet20", padding_mode="circular"),
                      downsample_config("lps"), (3, 32, 32), 10).double().eval()
    for block in net.modules():
        if isinstance(block, Residual):
            block.forward = lambda x, block=block: block.body(x) + block.shortcut(x)
    assert _moved(net, torch.randn(4, 3, 32, 32, dtype=torch.float64)) > 1e-6


def _tips_pair(shift: str, channels: int = 3, kernel: int = 3, pad_type: str = "reflect"):
    """Our TIPS layer and the reference's, float64, the same weights."""
    ours = TranslationInvariantPolyphaseSampling(channels, kernel, alpha=0.35, max_shift=3,
                                                 wrap=shift == "circular").double()
    theirs = tips_reference.TIPS(channels, pad_type=pad_type, kernel=kernel, max_shift_h=3,
                                 max_shift_w=3, transform_type=shift,
                                 return_soft_polyphase_indices=True).double()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("shift", ["circular", "standard"])
def test_tips_output_loss_and_gradients_equal_the_references(size, shift):
    """One point: the reference's objective reg + (1 − α)·CE + α·MSE(ψ(x), shifted x) is
    (1 − α) times ours, CE + the layer's term, so the gradients are too."""
    torch.manual_seed(0)
    ours, theirs = _tips_pair(shift)
    x = torch.randn(6, 3, *size, dtype=torch.float64)
    labels = torch.arange(6) % 3
    results = []
    for layer in (ours, theirs):
        torch.manual_seed(1)
        xi = x.clone().requires_grad_()
        if layer is ours:
            out = layer(xi)
            loss = (1 - 0.35) * (F.cross_entropy(out.mean(dim=(2, 3)), labels) + layer.loss)
        else:
            out, psi, moved, tau = layer(xi)
            loss = tips_reference.objective(out.mean(dim=(2, 3)), labels, [psi], [moved], tau)
        loss.backward()
        results.append([out, loss, xi.grad, *(p.grad for p in layer.parameters())])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)


def test_tips_terms_are_the_references_regulariser_and_weighted_mse():
    torch.manual_seed(0)
    ours, theirs = _tips_pair("circular")
    ours.fm_weight, ours.alpha = 2.0, 0.2
    x = torch.randn(4, 3, 10, 10, dtype=torch.float64)
    torch.manual_seed(1)
    ours(x)
    torch.manual_seed(1)
    _, psi, moved, tau = theirs(x)
    fm = tips_reference.Index_Regularize()(tau)
    expected = (2.0 * fm + 0.2 * F.mse_loss(psi, moved)) / 0.8
    torch.testing.assert_close(ours.loss, expected)
    assert fm > 0 and not torch.equal(moved, x)  # both terms are there


@pytest.mark.parametrize("size", [(1, 5), (1, 1), (4, 1)], ids=str)
def test_tips_replicates_a_single_row_or_column_that_reflection_cannot_pad(size):
    torch.manual_seed(0)
    ours, theirs = (m.eval() for m in _tips_pair("circular", pad_type="replicate"))
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x)[0], rtol=0, atol=0)


def test_tips_in_evaluation_adds_no_term_and_is_deterministic():
    torch.manual_seed(0)
    layer, _ = _tips_pair("circular")
    layer.eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(layer(x), layer(x)) and layer.loss is None
    layer.train()(x)
    assert layer.loss is not None and layer.loss.dim() == 0


@pytest.mark.parametrize("name", ["lps", "tips"])
def test_trains_end_to_end_and_only_tips_logs_a_term_of_its_own(name, quick, tmp_path):
    run = launch([*quick, f"downsample={name}", "logger=csv", "trainer.limit_train_batches=3",
                  "trainer.log_every_n_steps=1", "evaluation.shift.enabled=false",
                  "evaluation.feature_maps.enabled=false", "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed" and math.isfinite(results["test"]["loss"])
    [metrics] = (tmp_path / "out").glob("**/metrics.csv")
    terms = [float(r["train/aux_loss"]) for r in csv_rows(metrics) if r.get("train/aux_loss")]
    assert (len(terms) == 3 and all(term > 0 for term in terms)) == (name == "tips"), terms
