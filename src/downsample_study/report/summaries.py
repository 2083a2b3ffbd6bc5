"""What each evaluation's ``summary`` keys are to the report: their order, which are fractions
(shown in percent), and the one a claim rests on, compared with the baselines.

The keys are the evaluations' agreed names; a key not named here is still shown, as it is."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


def _largest(prefix: str) -> Callable[[list[str]], str | None]:
    """The key of ``prefix`` with the largest number after it (``pgd_eps8`` of eps1..eps8)."""
    def pick(keys: list[str]) -> str | None:
        found = [k for k in keys if k.startswith(prefix) and _number(k[len(prefix):]) is not None]
        return max(found, key=lambda k: _number(k[len(prefix):]), default=None)
    return pick


def _first_of(*names: str) -> Callable[[list[str]], str | None]:
    return lambda keys: next((name for name in names if name in keys), None)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Kind:
    title: str  # its section's heading
    about: str  # what its keys are, in a sentence or two
    order: tuple[str, ...] = ()  # prefixes of its keys, in the order they are tabled
    fractions: tuple[str, ...] = ()  # prefixes of the keys that are fractions of images
    digits: int = 2  # of a key that is no fraction
    apart: str | None = None  # the prefix of keys tabled on their own (one per corruption)
    apart_title: str = ""  # that table's
    headline: Callable[[list[str]], str | None] = lambda keys: None  # the claim's key
    lower_is_better: bool = False  # of the headline


KINDS = {
    "shift": Kind("Shift robustness", "", fractions=("acc_", "consistency_")),
    "shift_grid": Kind(
        "Accuracy at every shift", "Per fill, over the (2r+1)² offsets (dy, dx), r = {radius} "
        "px, of {images} test images: `mean`, the top-1 averaged over them; `worst`, the grid "
        "adversary's (Engstrom et al. 2019: an image counts only if no offset misleads the "
        "net); `ripple`, the spread of the accuracy over the grid's phases (Azulay & Weiss "
        "2019); `flip_rate`, the share of neighbouring offsets whose predictions differ; "
        "`fidelity`, the share of (image, offset) pairs right and as unshifted (Saha & "
        "Gokhale 2024).",
        order=("mean_", "worst_", "ripple_", "flip_rate_", "fidelity_"),
        fractions=("mean_", "worst_", "ripple_", "flip_rate_", "fidelity_"),
        headline=_first_of("worst_circular", "worst_zero")),
    "equivariance": Kind(
        "Equivariance at the downsampling points", "Shift-then-compute against "
        "compute-then-shift at each downsampling point, as a relative error (0: equivariant), "
        "the mean over the points: `aligned` for shifts by a multiple of the point's stride, "
        "`unaligned` for the others (up to rounding the shift to its grid).",
        order=("aligned", "unaligned"), digits=4),
    "aliasing": Kind(
        "Aliasing at the downsampling points", "The share of each downsampling point's input "
        "energy above its output's Nyquist frequency, the mean over the points: `trained`, "
        "and `initial` for the network as its seed initialised it.",
        order=("trained", "initial"), fractions=("trained", "initial"),
        headline=_first_of("trained"), lower_is_better=True),
    "corruptions": Kind(
        "Corruptions", "Top-1 error (1 − accuracy) on the clean test images and on each "
        "corruption, the mean over its severities; `mean_error`: over corruptions and "
        "severities.",
        order=("clean_error", "mean_error", "error_"),
        fractions=("clean_error", "mean_error", "error_"), apart="error_",
        apart_title="Error per corruption (`error_<corruption>`, the mean over its "
                    "severities), %",
        headline=_first_of("mean_error"), lower_is_better=True),
    "attacks": Kind(
        "Adversarial attacks", "Top-1 accuracy on clean images and under FGSM and PGD "
        "(L∞) at each budget ε, in 1/255 of the pixel range (`pgd_eps8`: ε = 8/255).",
        order=("clean", "fgsm_", "pgd_"), fractions=("clean", "fgsm_", "pgd_"),
        headline=_largest("pgd_eps")),
    "cost": Kind(
        "Inference cost", "Latency (ms, the median of repeats) and throughput per batch "
        "size B on each job's device, and the peak memory; jobs on other devices or sharing "
        "one do not compare.",
        order=("latency_ms_", "images_per_s_", "peak_memory_mb")),
}
SECTIONS = ("shift_grid", "equivariance", "aliasing", "corruptions", "attacks", "cost")


def kind(evaluation: str) -> Kind:
    return KINDS.get(evaluation) or Kind(evaluation, "")


def is_fraction(evaluation: str, key: str) -> bool:
    return key.startswith(kind(evaluation).fractions)


def path(evaluation: str, key: str) -> tuple[str, ...]:
    """Where ``Variant.stat`` finds a summary key in a job's results."""
    return ("evaluations", evaluation, "summary", key)


def scale(evaluation: str, key: str) -> float:
    """Fractions in percent, the rest as measured."""
    return 100.0 if is_fraction(evaluation, key) else 1.0


def ordered(evaluation: str, keys: set[str] | list[str]) -> list[str]:
    """By the kind's prefixes, then naturally (``eps2`` before ``eps16``); others last."""
    prefixes = kind(evaluation).order

    def rank(key: str) -> tuple:
        at = next((i for i, p in enumerate(prefixes) if key.startswith(p)), len(prefixes))
        parts = re.split(r"(\d+(?:\.\d+)?)", key)
        return at, [(0, float(p), "") if _number(p) is not None else (1, 0.0, p) for p in parts]

    return sorted(set(keys), key=rank)


def header(evaluation: str, key: str) -> str:
    return f"{key} %" if is_fraction(evaluation, key) else key


def digits(evaluation: str, key: str) -> int:
    return 2 if is_fraction(evaluation, key) else kind(evaluation).digits
