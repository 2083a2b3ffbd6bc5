"""Corruptions: MNIST-C's and CIFAR-10-C's functions against their authors' code and by their
properties, the names a config may list, and the evaluation's numbers on a tiny net."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from support.corruption_images import digits, photos
from support.evaluations import evaluation_data
from support.references import cifar10_c as cifar10_c_reference
from support.references import mnist_c as mnist_c_reference
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.errors import ConfigError
from downsample_study.evaluations import cifar10_c, mnist_c
from downsample_study.evaluations.configs import EVALUATIONS, CorruptionsConfig
from downsample_study.evaluations.corruption_functions import FAMILIES, corruption_names, generator
from downsample_study.evaluations.corruption_tools import motion_blur
from downsample_study.evaluations.corruptions import corrupt, error

IMAGES = {1: digits(6), 3: photos(6)}
EVERY = [(channels, name) for channels, family in FAMILIES.items() for name in family]
IDS = [f"{channels}ch-{name}" for channels, name in EVERY]
DETERMINISTIC = {(1, "scale"), (1, "brightness"), (1, "stripe"), (1, "canny_edges"),
                 (3, "defocus_blur"), (3, "zoom_blur"), (3, "brightness"), (3, "contrast"),
                 (3, "pixelate"), (3, "jpeg_compression")}
# where a larger severity need not move the image further (mean absolute difference):
# MNIST-C's scale shrinks the digit, so less ink is left to differ (its ink is tested instead);
# CIFAR-10-C's own elastic strengths trade a shrinking affine jitter for a growing elastic part
NOT_FURTHER = {(1, "scale"), (3, "elastic_transform")}


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().mean().item()


@pytest.mark.parametrize(("channels", "name"), EVERY, ids=IDS)
def test_dtype_shape_and_range_are_kept_and_floats_match_bytes(channels, name):
    images = IMAGES[channels]
    out = corrupt(images, name, 3, seed=0)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    floats = corrupt(images.float() / 255, name, 3, seed=0)
    assert floats.dtype == torch.float32 and floats.shape == images.shape
    assert floats.min() >= 0 and floats.max() <= 1
    # the same draws on the same values (float32 would move glass blur's 8-bit step): the bytes
    # are the floats, rounded
    exact = corrupt(images.double() / 255, name, 3, seed=0)
    assert (exact * 255 - out.double()).abs().max() <= 0.5 + 1e-9


@pytest.mark.parametrize(("channels", "name"), EVERY, ids=IDS)
def test_severity_zero_is_the_image_itself(channels, name):
    images = IMAGES[channels]
    assert corrupt(images, name, 0, seed=0) is images


@pytest.mark.parametrize(("channels", "name"), EVERY, ids=IDS)
def test_the_seed_fixes_the_draws(channels, name):
    images = IMAGES[channels]
    first = corrupt(images, name, 4, seed=3)
    assert torch.equal(corrupt(images, name, 4, seed=3), first)
    other = torch.equal(corrupt(images, name, 4, seed=4), first)
    assert other == ((channels, name) in DETERMINISTIC)


@pytest.mark.parametrize(("channels", "name"), EVERY, ids=IDS)
def test_a_larger_severity_moves_the_image_no_closer(channels, name):
    images = IMAGES[channels]
    steps = [corrupt(images, name, severity, seed=0) for severity in range(6)]
    moved = [distance(step, images) for step in steps]
    assert moved[1] > 0
    if (channels, name) == (1, "scale"):  # the digit shrinks: less ink at every step
        ink = [step.double().sum().item() for step in steps]
        assert all(a > b for a, b in itertools.pairwise(ink)), ink
    elif (channels, name) not in NOT_FURTHER:
        assert all(b >= a - 1e-9 for a, b in itertools.pairwise(moved)), moved


def reference_input(channels: int) -> np.ndarray:
    image = IMAGES[channels][0].numpy()
    return image[0] if channels == 1 else image.transpose(1, 2, 0)


def as_reference(out: torch.Tensor) -> np.ndarray:
    image = out[0].double().numpy()
    return image[0] if len(image) == 1 else image.transpose(1, 2, 0)


# (name, the reference's call): at MNIST-C's own strength, our severity 3
MNIST_C_PORTED = [
    ("glass_blur", mnist_c_reference.glass_blur),
    ("fog", lambda x, rng: mnist_c_reference.fog(x, rng, severity=5)),
    ("dotted_line", mnist_c_reference.dotted_line),
    ("zigzag", mnist_c_reference.zigzag),
    ("canny_edges", lambda x, rng: mnist_c_reference.canny_edges(x)),
]


@pytest.mark.parametrize(("name", "reference"), MNIST_C_PORTED, ids=[n for n, _ in MNIST_C_PORTED])
def test_mnist_c_severity_3_is_the_reference(name, reference):
    ours = as_reference(corrupt(IMAGES[1][:1], name, 3, seed=5))
    theirs = reference(reference_input(1), generator(5, name, 0))
    # rounded both: a value on a half may round either way after other float steps
    assert np.abs(ours - np.round(theirs)).max() <= 1


CIFAR_10_C_PORTED = [
    ("glass_blur", cifar10_c_reference.glass_blur),
    ("zoom_blur", lambda x, rng, severity: cifar10_c_reference.zoom_blur(x, severity)),
    ("brightness", lambda x, rng, severity: cifar10_c_reference.brightness(x, severity)),
    ("contrast", lambda x, rng, severity: cifar10_c_reference.contrast(x, severity)),
]


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize(("name", "reference"), CIFAR_10_C_PORTED,
                         ids=[n for n, _ in CIFAR_10_C_PORTED])
def test_cifar_10_c_is_the_reference_at_each_severity(name, reference, severity):
    ours = as_reference(corrupt(IMAGES[3][:1], name, severity, seed=5))
    theirs = reference(reference_input(3), generator(5, name, 0), severity=severity)
    assert np.abs(ours - np.round(theirs)).max() <= 1


@pytest.mark.parametrize(("family", "name", "strength"), [
    (mnist_c, "glass_blur", (0.7, 1, 2)), (mnist_c, "motion_blur", (10, 3)),
    (cifar10_c, "motion_blur", (6, 1))])
def test_a_blur_keeps_a_flat_image_flat(family, name, strength):
    """Each blur's weights sum to 1 and its border repeats the image: grey stays that grey."""
    grey = 102 / 255
    flat = np.full((2, 28, 28) if family is mnist_c else (2, 32, 32, 3), grey)
    out = family.CORRUPTIONS[name].apply(flat, strength, np.random.default_rng(0))
    np.testing.assert_allclose(out, grey, atol=1e-12)


DIAGONAL = [0, 1, 1, 2, 3, 4, 4]  # i·cos 45°, rounded half down, for the taps i = 0..6


@pytest.mark.parametrize(("angle", "rows", "cols"), [
    (0.0, [0] * 7, range(7)), (90.0, range(7), [0] * 7), (45.0, DIAGONAL, DIAGONAL),
    (-45.0, [-o for o in DIAGONAL], DIAGONAL)])
def test_motion_blur_reads_along_its_angle_as_imagemagick(angle, rows, cols):
    """Tap i reads the pixel ⌈i·(sin, cos) − 0.5⌉ (rows down, cols right) away: a dot is seen
    from the pixels on the opposite side, a one-sided streak of 2·radius + 1 taps."""
    dot = np.zeros((1, 15, 15))
    dot[0, 7, 7] = 1.0
    out = motion_blur(dot, 3, 1.0, np.array([angle]))[0]
    assert {tuple(p) for p in np.argwhere(out > 0)} == {
        (7 - r, 7 - c) for r, c in zip(rows, cols)}


@pytest.mark.parametrize("jitter", [1.0, -2.0])
def test_the_elastic_affine_part_moves_the_image_with_its_points(jitter):
    """Three points all moved by (j, j): the whole image shifts by j pixels right and down."""
    class Fixed:
        def uniform(self, low, high, size):
            return np.full(size, jitter)

    x = np.random.default_rng(0).random((1, 32, 32, 3))
    moved = cifar10_c.affine_jitter(x, 3.0, Fixed())
    j = int(jitter)
    inner = slice(3, 29)
    np.testing.assert_allclose(moved[0, inner, inner],
                               x[0, 3 - j : 29 - j, 3 - j : 29 - j], atol=1e-9)


@pytest.mark.parametrize("channels", [1, 3])
def test_no_names_means_every_corruption_of_the_channels(channels):
    assert corruption_names([], channels) == list(FAMILIES[channels])
    assert corruption_names(["fog"], channels) == ["fog"]


@pytest.mark.parametrize(("names", "channels", "message"), [
    (["smoke"], 1, r"'smoke' is unknown; allowed for 1-channel images \(MNIST-C\): shot_noise, "),
    (["stripe"], 3, r"'stripe' is MNIST-C's, not for 3-channel images; allowed for 3-channel "
                    r"images \(CIFAR-10-C\): gaussian_noise, "),
    (["contrast"], 1, r"'contrast' is CIFAR-10-C's, not for 1-channel images; allowed"),
    (["fog", "fog"], 3, r"a corruption listed twice in \['fog', 'fog'\]"),
    ([], 2, r"no corruptions for 2-channel images"),
], ids=["unknown", "grey-only", "rgb-only", "twice", "two-channels"])
def test_a_name_that_does_not_apply_is_refused_in_one_line(names, channels, message):
    with pytest.raises(ConfigError, match=r"^evaluation\.corruptions\.names: " + message) as e:
        corruption_names(names, channels)
    assert "\n" not in str(e.value)


def tiny_net(channels: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 6, 3, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 10)).eval()


@pytest.mark.parametrize("channels", [1, 3])
def test_the_evaluation_reports_errors_per_corruption_and_severity(channels):
    images = (digits if channels == 1 else photos)(24, seed=1)
    labels = torch.arange(24) % 10
    data = evaluation_data(Split(images, labels), mean=(0.4,) * channels, std=(0.3,) * channels,
                           batch_size=10)
    net = tiny_net(channels)
    cfg = CorruptionsConfig(enabled=True, severities=[1, 5], images=20, seed=2)
    measured = EVALUATIONS["corruptions"](net, data, cfg)
    names = list(FAMILIES[channels])
    assert set(measured.summary) == {"clean_error", "mean_error",
                                     *(f"error_{name}" for name in names)}
    assert all(0 <= value <= 1 for value in measured.summary.values())
    details = measured.details
    assert details["severities"] == [1, 5] and list(details["errors"]) == names
    assert all(len(errors) == 2 for errors in details["errors"].values())
    x = data.normalise(images[:20].float() / 255)
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == labels[:20]).float().mean().item()
    assert measured.summary["clean_error"] == pytest.approx(1 - accuracy)
    assert details["clean_error"] == measured.summary["clean_error"]
    means = [sum(e) / 2 for e in details["errors"].values()]
    assert measured.summary["mean_error"] == pytest.approx(sum(means) / len(means))
    first = Split(images[:20], labels[:20])
    assert details["errors"][names[0]] == [
        error(net, data, Split(corrupt(first.images, names[0], severity, 2), first.labels))
        for severity in (1, 5)]
    assert not net.training
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
    assert len(measured.figures["examples"].axes) == 1 + len(names)


def test_an_error_counts_each_wrong_image_once_across_batches():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 0])
    data = evaluation_data(Split(digits(7), labels), batch_size=3)
    always_zero = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3))
    nn.init.zeros_(always_zero[1].weight)
    with torch.no_grad():
        always_zero[1].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    assert error(always_zero, data, data.test) == pytest.approx(3 / 7)


def test_the_names_can_be_checked_without_torch():
    """What a config's check may call: the corruption functions need numpy, scipy and PIL only."""
    code = ("import sys; from downsample_study.evaluations.corruption_functions import "
            "corruption_names; corruption_names([], 1); print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.strip() == "False", run.stderr[-2000:]
