"""FGSM and PGD: against torchattacks' code, against the exact robust accuracy of a linear
model, and the properties any attack must have (budget, monotone in ε, the net untouched)."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from support.references import torchattacks_ref
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.evaluations import attacks as attacks_module
from downsample_study.evaluations.attacks import attacks, fgsm, pgd
from downsample_study.evaluations.base import EvaluationData
from downsample_study.evaluations.configs import EVALUATIONS, AttacksConfig

MEAN, STD = (0.4, 0.5), (0.25, 0.3)
SHAPE = (2, 6, 6)
EPSILONS = [0.5 / 255, 2 / 255, 8 / 255, 16 / 255]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def evaluation_data(split: Split, batch_size: int = 32) -> EvaluationData:
    return EvaluationData(split, MEAN, STD, batch_size, num_classes=3, seed=0, title="tiny")


def evaluate(net: nn.Module, split: Split, batch_size: int = 32, **options) -> dict:
    cfg = AttacksConfig(**{"epsilons": EPSILONS, "pgd_steps": 5, "images": 0, **options})
    return attacks(net, evaluation_data(split, batch_size), cfg).details


def blobs(n: int, classes: int, seed: int = 0, lo: int = 0, hi: int = 255) -> Split:
    """Each class a pattern of its own (the same for every ``seed``) under noise, pixels
    within [lo, hi]."""
    patterns = torch.rand(classes, *SHAPE, generator=torch.Generator().manual_seed(classes))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    pixels = 0.3 * patterns[labels] + 0.7 * torch.rand(n, *SHAPE, generator=generator)
    return Split((lo + (hi - lo) * pixels).round().to(torch.uint8), labels)


def small_conv(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(6 * 3 * 3, 3))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, Split]:
    """A small conv net trained briefly: well above chance, so the attacks have work to do."""
    train, test = blobs(256, 3, seed=1), blobs(96, 3, seed=2)
    net = small_conv()
    optimiser = torch.optim.Adam(net.parameters(), lr=0.02)
    x = evaluation_data(train).normalise(train.images.float() / 255)
    for _ in range(60):
        optimiser.zero_grad()
        F.cross_entropy(net(x), train.labels).backward()
        optimiser.step()
    net.zero_grad(set_to_none=True)
    return net.eval(), test


def test_the_trained_net_is_a_fair_target(trained):
    net, test = trained
    assert evaluate(net, test, epsilons=[1 / 255])["clean"] > 0.8


@pytest.mark.parametrize("eps", [1 / 255, 8 / 255, 0.2])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_equal_to_torchattacks(attack, eps):
    """Without PGD's random start both are deterministic: the same images, bit for bit. (32
    images: torchattacks averages the loss, we sum it; a power of 2 scales exactly.)"""
    net, split = small_conv(seed=3).eval(), blobs(32, 3, seed=4)
    data = evaluation_data(split)
    x = split.images.float() / 255

    def logits_of(pixels):
        return net(data.normalise(pixels))

    if attack == "fgsm":
        ours = fgsm(logits_of, x, split.labels, eps)
        theirs = torchattacks_ref.fgsm(logits_of, x, split.labels, eps)
    else:
        ours = pgd(logits_of, x, split.labels, eps, steps=7, step_size=eps / 3)
        theirs = torchattacks_ref.pgd(logits_of, x, split.labels, eps, alpha=eps / 3, steps=7,
                                      random_start=False)
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, x)


def linear_two_class() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(nn.Flatten(), nn.Linear(72, 2))


def test_a_linear_two_class_net_loses_exactly_its_robust_margin():
    """For logits w·z + b on z = (x − mean)/std, the worst image within ε (L∞, pixel units, no
    clipping) moves the margin by ε·Σ|w_y − w_other|/std: FGSM hits that corner, and PGD (2.5ε
    of steps) reaches it from any start."""
    net = linear_two_class().eval()
    split = blobs(200, 2, seed=6, lo=80, hi=170)  # within 0.31 … 0.67: ε ≤ 16/255 never clips
    data = evaluation_data(split)
    found = evaluate(net, split, epsilons=[1e-7, *EPSILONS])
    weight, bias = net[1].weight.detach().double(), net[1].bias.detach().double()
    z = data.normalise(split.images.double() / 255).flatten(1)
    std = torch.tensor(STD, dtype=torch.double).repeat_interleave(36)
    sign = 1 - 2 * split.labels.double()  # +1 for class 0, −1 for class 1
    margin = sign * (z @ (weight[0] - weight[1]) + bias[0] - bias[1])
    for eps, under_fgsm, under_pgd in zip(found["epsilons"], found["fgsm"], found["pgd"]):
        shift = eps * ((weight[0] - weight[1]).abs() / std).sum()
        exact = (margin > shift).double().mean().item()
        assert under_fgsm == pytest.approx(exact) and under_pgd == pytest.approx(exact)
    assert found["pgd"][0] == found["clean"] > found["pgd"][-1]


def test_pgd_is_at_least_as_strong_as_fgsm_and_weakens_the_net_as_eps_grows(trained):
    net, test = trained
    found = evaluate(net, test, epsilons=[1e-7, *EPSILONS])
    assert found["fgsm"][0] == found["pgd"][0] == found["clean"]  # ε → 0: clean accuracy
    assert all(a >= b for a, b in zip(found["pgd"], found["pgd"][1:]))
    assert all(p <= f for p, f in zip(found["pgd"], found["fgsm"]))
    assert max(found["fgsm"]) <= found["clean"]
    assert found["pgd"][-1] < found["fgsm"][-1] < found["clean"] / 2


@pytest.mark.parametrize("eps", [1 / 255, 8 / 255, 0.3])
def test_adversarial_images_stay_within_eps_and_in_the_image_range(trained, eps):
    net, _ = trained
    split = blobs(32, 3, seed=7)
    split.images[:16, :, :2] = 0  # the clipping at both ends is exercised
    split.images[16:, :, -2:] = 255
    data = evaluation_data(split)
    x = split.images.float() / 255

    def logits_of(pixels):
        return net(data.normalise(pixels))

    start = torch.empty(x.shape).uniform_(-1, 1)
    for adversarial in (fgsm(logits_of, x, split.labels, eps),
                        pgd(logits_of, x, split.labels, eps, 4, eps, start)):
        assert (adversarial - x).abs().max() <= eps + 1e-6  # float32 rounding near 1
        assert adversarial.min() >= 0 and adversarial.max() <= 1
        assert (adversarial - x).abs().max() >= eps - 1e-6  # it uses its budget


class Recording(nn.Module):
    """A net that notes the mode it was called in; one frozen layer, one with a stale grad."""

    def __init__(self):
        super().__init__()
        self.frozen, self.head = nn.Linear(72, 8).requires_grad_(False), nn.Linear(8, 3)
        self.head.weight.grad = torch.ones_like(self.head.weight)
        self.modes: set[bool] = set()

    def forward(self, x):
        self.modes.add(self.training)
        return self.head(torch.relu(self.frozen(x.flatten(1))))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("caller", ["plain", "inference_mode"])
def test_the_net_is_attacked_in_eval_mode_and_left_as_found(training, caller):
    torch.manual_seed(8)
    net = Recording().train(training)
    if caller == "inference_mode":
        with torch.inference_mode():
            evaluate(net, blobs(20, 3, seed=9))
    else:
        evaluate(net, blobs(20, 3, seed=9))
    assert net.modes == {False} and net.training == training
    assert not net.frozen.weight.requires_grad and net.frozen.weight.grad is None
    assert net.head.weight.requires_grad and net.head.bias.grad is None
    assert torch.equal(net.head.weight.grad, torch.ones_like(net.head.weight))


def test_summary_keys_details_and_figure(trained):
    net, test = trained
    cfg = AttacksConfig(epsilons=EPSILONS, pgd_steps=3, images=40)
    found = EVALUATIONS["attacks"](net, evaluation_data(test), cfg)
    assert set(found.summary) == {"clean", "fgsm_eps0.5", "fgsm_eps2", "fgsm_eps8", "fgsm_eps16",
                                  "pgd_eps0.5", "pgd_eps2", "pgd_eps8", "pgd_eps16"}
    assert all(re.fullmatch(r"[a-z0-9_.]+", key) for key in found.summary)
    assert all(type(value) is float and 0 <= value <= 1 for value in found.summary.values())
    details = json.loads(json.dumps(found.details))  # plain JSON data
    assert details == found.details and details["pgd_steps"] == 3 and details["images"] == 40
    assert details["epsilons"] == EPSILONS
    assert found.summary["fgsm_eps8"] == details["fgsm"][2]
    assert found.summary["pgd_eps16"] == details["pgd"][3]
    assert found.summary["clean"] == details["clean"]
    [axes] = found.figures["accuracy"].axes
    assert isinstance(found.figures["accuracy"], Figure) and len(axes.lines) == 2
    assert list(axes.lines[1].get_ydata()) == [details["clean"], *details["pgd"]]


@pytest.mark.parametrize(("steps", "step_size"), [(10, 2.5), (3, 1.0)])
def test_pgd_takes_the_configured_steps_from_a_random_start(trained, monkeypatch, steps,
                                                            step_size):
    """Madry et al.: ``steps`` steps of step_size·ε/steps, from a start uniform in the ε-ball."""
    net, test = trained
    calls = []

    def recorded(logits_of, x, labels, eps, steps, step_size, start):
        calls.append((eps, steps, step_size, start))
        return pgd(logits_of, x, labels, eps, steps, step_size, start)

    monkeypatch.setattr(attacks_module, "pgd", recorded)
    evaluate(net, test, batch_size=64, pgd_steps=steps, pgd_step_size=step_size)
    assert [call[:3] for call in calls] == [
        (eps, steps, pytest.approx(step_size * eps / steps)) for _ in range(2) for eps in EPSILONS]
    starts = torch.cat([call[3] for call in calls[:: len(EPSILONS)]])
    assert starts.shape == (len(test), *SHAPE) and starts.abs().max() <= 1
    assert starts.mean().abs() < 0.05 and starts.std() == pytest.approx(3**-0.5, rel=0.05)


def test_reproducible_seeded_by_its_own_generator_and_independent_of_the_batch_size(trained):
    """One weak PGD step from the start: the start decides, so a change of seed shows."""
    net, test = trained
    options = {"pgd_steps": 1, "pgd_step_size": 0.2, "epsilons": [0.3]}
    torch.manual_seed(10)
    first = evaluate(net, test, **options)
    torch.manual_seed(11)  # the global generator plays no part
    assert evaluate(net, test, **options) == first
    assert evaluate(net, test, batch_size=7, **options) == first
    assert evaluate(net, test, seed=1, **options)["pgd"] != first["pgd"]


@pytest.mark.cuda
@cuda
def test_on_cuda_as_on_the_cpu(trained):
    net, test = trained
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        on_cuda = evaluate(net.cuda(), test.to(torch.device("cuda")))
    finally:
        net.cpu()
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
    on_cpu = evaluate(net, test)
    assert on_cuda["clean"] == on_cpu["clean"]
    # a gradient within rounding of 0 may take the other sign: at most one image apart
    for attack in ("fgsm", "pgd"):
        assert on_cuda[attack] == pytest.approx(on_cpu[attack], abs=1.5 / len(test))
