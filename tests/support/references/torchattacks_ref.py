"""FGSM and L∞ PGD ported from Harry24k/adversarial-attacks-pytorch (torchattacks 3.5.1),
``torchattacks/attacks/fgsm.py`` and ``pgd.py`` (``forward``; MIT licence, Copyright (c) 2020
Harry Kim).

Changed: functions instead of ``Attack`` subclasses (the targeted mode, the device move and the
normalisation wrapper dropped); ``model`` takes images in [0, 1]. The arithmetic is the
original's. Not a dependency: torchattacks pins ``requests~=2.25.1``.
"""

from __future__ import annotations

import torch
from torch import nn


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    images = images.clone().detach()
    labels = labels.clone().detach()
    loss = nn.CrossEntropyLoss()
    images.requires_grad = True
    outputs = model(images)
    cost = loss(outputs, labels)
    grad = torch.autograd.grad(cost, images, retain_graph=False, create_graph=False)[0]
    adv_images = images + eps * grad.sign()
    return torch.clamp(adv_images, min=0, max=1).detach()


def pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, alpha: float,
        steps: int, random_start: bool = True) -> torch.Tensor:
    images = images.clone().detach()
    labels = labels.clone().detach()
    loss = nn.CrossEntropyLoss()
    adv_images = images.clone().detach()
    if random_start:
        adv_images = adv_images + torch.empty_like(adv_images).uniform_(-eps, eps)
        adv_images = torch.clamp(adv_images, min=0, max=1).detach()
    for _ in range(steps):
        adv_images.requires_grad = True
        outputs = model(adv_images)
        cost = loss(outputs, labels)
        grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images
