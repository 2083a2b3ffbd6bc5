"""Adversarial robustness: accuracy under L∞ FGSM and PGD, budgets ε in pixel units of [0, 1].

Written here rather than taken from torchattacks: its last release (3.5.1, 2023) pins
``requests~=2.25.1``, which the docs extra cannot share. tests/test_attacks.py checks these
against a port of its FGSM and PGD.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from downsample_study.evaluations.base import EvaluationData, Measured
from downsample_study.evaluations.configs import EVALUATIONS, AttacksConfig

LogitsOf = Callable[[torch.Tensor], torch.Tensor]  # images in [0, 1] → logits


def loss_gradient(logits_of: LogitsOf, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The gradient of the cross-entropy w.r.t. the images ``x`` alone: nothing reaches the
    parameters' ``.grad``. Summed, not averaged, over the batch: each image's own gradient."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(logits_of(x), labels, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def fgsm(logits_of: LogitsOf, x: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015): one step of ε along the gradient's sign, kept in [0, 1]."""
    return (x + eps * loss_gradient(logits_of, x, labels).sign()).clamp(0, 1)


def pgd(logits_of: LogitsOf, x: torch.Tensor, labels: torch.Tensor, eps: float, steps: int,
        step_size: float, start: torch.Tensor | None = None) -> torch.Tensor:
    """L∞ PGD (Madry et al. 2018): ``steps`` signed-gradient steps of ``step_size``, each
    projected back onto the ε-ball around ``x`` and onto [0, 1]. ``start``: values in [-1, 1]
    shaped like ``x``, times ε the random start (None: start at ``x``)."""
    adversarial = x if start is None else (x + eps * start).clamp(0, 1)
    for _ in range(steps):
        adversarial = adversarial + step_size * loss_gradient(logits_of, adversarial, labels).sign()
        adversarial = (x + (adversarial - x).clamp(-eps, eps)).clamp(0, 1)
    return adversarial.detach()


def budget_name(eps: float) -> str:
    """ε in units of 1/255 as the summary keys spell it: 8/255 → ``eps8``."""
    return f"eps{eps * 255:g}"


@EVALUATIONS.register("attacks")
def attacks(net: nn.Module, data: EvaluationData, cfg: AttacksConfig) -> Measured:
    """Top-1 accuracy of ``net`` on the first ``cfg.images`` test images, clean and under FGSM
    and PGD at each ε of ``cfg.epsilons``; PGD's random start is drawn from ``cfg.seed``."""
    was_training = net.training
    net.eval()
    try:
        # gradients w.r.t. the input, even where the caller runs under inference_mode
        with torch.inference_mode(False), torch.enable_grad():
            details = accuracies(net, data, cfg)
    finally:
        net.train(was_training)
    summary = {"clean": details["clean"]}
    for eps, under_fgsm, under_pgd in zip(cfg.epsilons, details["fgsm"], details["pgd"]):
        summary[f"fgsm_{budget_name(eps)}"] = under_fgsm
        summary[f"pgd_{budget_name(eps)}"] = under_pgd
    return Measured(summary, details, {"accuracy": accuracy_figure(details, data.title)})


def accuracies(net: nn.Module, data: EvaluationData, cfg: AttacksConfig) -> dict:
    """``attacks``' details: the accuracies, clean and per ε, of ``net`` (in eval mode)."""
    test = data.first(cfg.images)

    def logits_of(pixels: torch.Tensor) -> torch.Tensor:
        return net(data.normalise(pixels))

    def correct(pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (logits_of(pixels).argmax(1) == labels).sum()

    # on the CPU, so that a seed gives the same starts on every device
    generator = torch.Generator().manual_seed(cfg.seed)
    # counts stay on the device: one synchronisation at the end, not one per batch
    clean = torch.zeros((), dtype=torch.long, device=data.device)
    by_fgsm = torch.zeros(len(cfg.epsilons), dtype=torch.long, device=data.device)
    by_pgd = torch.zeros_like(by_fgsm)
    for begin in range(0, len(test), data.batch_size):
        x = test.images[begin : begin + data.batch_size].float() / 255
        y = test.labels[begin : begin + data.batch_size]
        # one start per image, scaled by each ε: the budgets are compared on equal draws
        start = torch.empty(x.shape).uniform_(-1, 1, generator=generator).to(x.device)
        clean += correct(x, y)
        for i, eps in enumerate(cfg.epsilons):
            by_fgsm[i] += correct(fgsm(logits_of, x, y, eps), y)
            step_size = cfg.pgd_step_size * eps / cfg.pgd_steps
            by_pgd[i] += correct(pgd(logits_of, x, y, eps, cfg.pgd_steps, step_size, start), y)
    n = len(test)
    return {"epsilons": [float(eps) for eps in cfg.epsilons], "clean": clean.item() / n,
            "fgsm": [count / n for count in by_fgsm.tolist()],
            "pgd": [count / n for count in by_pgd.tolist()], "pgd_steps": cfg.pgd_steps,
            "pgd_step_size": float(cfg.pgd_step_size), "images": n}


def accuracy_figure(details: dict, title: str = "") -> Figure:
    """Accuracy against ε (in units of 1/255) under each attack, from the clean accuracy at 0."""
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    budgets = [0.0] + [eps * 255 for eps in details["epsilons"]]
    for attack in ("fgsm", "pgd"):
        label = attack.upper() + (f" ({details['pgd_steps']} steps)" if attack == "pgd" else "")
        ax.plot(budgets, [details["clean"], *details[attack]], marker="o", label=label)
    ax.set_xlabel("ε (L∞, in units of 1/255)")
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    return fig
