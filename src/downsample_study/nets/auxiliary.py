"""Operators that add a term to the training objective: the layer's base, and the terms of a
network (or of each member of a pack) after its forward pass."""

from __future__ import annotations

import torch
from torch import nn

from downsample_study.nets.packed_layers import PerMember


class AuxiliaryLoss(nn.Module):
    """A layer that adds a term to the training objective (TIPS's regularisers): its forward
    in training sets ``loss`` (a 0-dim tensor, weighted), which the training step takes."""

    def __init__(self):
        super().__init__()
        self.loss: torch.Tensor | None = None


def auxiliary_losses(net: nn.Module, members: int) -> torch.Tensor | None:
    """What the ``AuxiliaryLoss`` layers of ``net`` (one network, or a pack of ``members``)
    added in its last forward, taken: a 0-dim tensor, or one per member; None if none did.
    In a pack such a layer runs as one copy per member (``PerMember``): copy k's is member k's."""
    if members == 1:
        roots: list[list[nn.Module]] = [[net]]
    else:
        roots = [[] for _ in range(members)]
        for module in net.modules():
            if isinstance(module, PerMember):
                for k, copy_k in enumerate(module.copies):
                    roots[k].append(copy_k)
    sums: list[torch.Tensor | None] = []
    for member_roots in roots:
        terms = []
        for root in member_roots:
            for layer in root.modules():
                if isinstance(layer, AuxiliaryLoss) and layer.loss is not None:
                    terms.append(layer.loss)
                    layer.loss = None
        sums.append(torch.stack(terms).sum() if terms else None)
    found = [term for term in sums if term is not None]
    if not found:
        return None
    if members == 1:
        return found[0]
    return torch.stack([term if term is not None else found[0].new_zeros(()) for term in sums])
