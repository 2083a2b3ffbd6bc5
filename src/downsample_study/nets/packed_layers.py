"""The layers a pack is built of, beyond torch's own: each runs K members' parts at once.

Features are ``(batch, K, F)`` after the flatten, maps ``(batch, K·C, H, W)``; a layer that
draws random numbers draws each member's from its own generator, as its solo run would.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn


class PackedLinear(nn.Module):
    """K linear layers on ``(batch, K, in)`` features: one batched matmul."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))
        self.bias = (nn.Parameter(torch.stack([m.bias.detach() for m in layers]))
                     if layers[0].bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(0, 1)  # K, batch, in
        if self.bias is None:
            out = torch.bmm(x, self.weight.transpose(1, 2))
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))
        return out.transpose(0, 1)


def _channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is a map laid out channels-last (and not also plainly contiguous)."""
    return (x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last))


class _Flatten(torch.autograd.Function):
    """``x.reshape(batch, K, -1)`` whose gradient comes back in ``x``'s memory format: a
    channels-last map's max pool would otherwise convert its input, 4× the gradient, both ways
    (benchmarks/RESULTS.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, members: int) -> torch.Tensor:
        ctx.shape, ctx.channels_last = x.shape, _channels_last(x)
        return x.reshape(x.shape[0], members, -1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.reshape(ctx.shape)
        if ctx.channels_last:
            grad = grad.contiguous(memory_format=torch.channels_last)
        return grad, None


class PackedFlatten(nn.Module):
    """``(batch, K·C, H, W)`` maps to ``(batch, K, C·H·W)`` features, each member's in the
    solo network's order."""

    def __init__(self, members: int):
        super().__init__()
        self.members = members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Flatten.apply(x, self.members)


def _member_slices(x: torch.Tensor, members: int) -> list[torch.Tensor]:
    """Each member's part of a packed activation, shaped as in its solo network."""
    if x.dim() == 3:  # features: batch, K, F
        return [x[:, k] for k in range(members)]
    return list(x.chunk(members, dim=1))


def _join(parts: list[torch.Tensor], features: bool) -> torch.Tensor:
    return torch.stack(parts, dim=1) if features else torch.cat(parts, dim=1)


class PackedDropout(nn.Module):
    """Dropout with each member's mask from its own generator, in the solo network's order and
    shape: on CPU the masks are the solo run's exactly."""

    def __init__(self, p: float, generators: list[torch.Generator]):
        super().__init__()
        self.p = p
        self.generators = generators  # the pack's list: ``PackedNet.generators_on`` moves them

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0
        keep = 1 - self.p
        # as ATen's CPU dropout: a Bernoulli mask shaped like the solo network's input, in
        # its memory format, divided by the keep probability
        layout = torch.channels_last if _channels_last(x) else torch.contiguous_format
        masks = [torch.empty(part.shape, dtype=x.dtype, device=x.device, memory_format=layout)
                 .bernoulli_(keep, generator=generator).div_(keep)
                 for part, generator in zip(_member_slices(x, len(self.generators)),
                                            self.generators, strict=True)]
        return x * _join(masks, x.dim() == 3)


class PerMember(nn.Module):
    """K copies of a layer, each on its own member's slice: for a layer that may mix channels
    (APS picks its phase by a norm over all of them; a mixed pool's gate may be shared), or a
    network the packer does not know. In training, what member k's copy draws from torch's
    global generator (dropout, stochastic depth) comes from member k's, as in its solo run."""

    def __init__(self, layers: Sequence[nn.Module], generators: list[torch.Generator]):
        super().__init__()
        self.copies = nn.ModuleList(layers)
        self.generators = generators  # the pack's list: ``PackedNet.generators_on`` moves them

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = _member_slices(x, len(self.copies))
        if not self.training:
            outs = [m(p) for m, p in zip(self.copies, parts, strict=True)]
        else:
            outs = [_drawing_from(generator, m, p) for m, p, generator in zip(
                self.copies, parts, self.generators, strict=True)]
        return _join(outs, x.dim() == 3)


def _drawing_from(generator: torch.Generator, module: nn.Module, x: torch.Tensor):
    """``module(x)`` with ``generator`` standing in for the global generator of ``x``'s
    device (CPU or CUDA), and left where the draws took it."""
    if x.device.type == "cuda":
        index = x.device.index if x.device.index is not None else torch.cuda.current_device()
        get = functools.partial(torch.cuda.get_rng_state, index)
        put = functools.partial(torch.cuda.set_rng_state, device=index)
    else:
        get, put = torch.get_rng_state, torch.set_rng_state
    own = get()
    put(generator.get_state())
    try:
        return module(x)
    finally:
        generator.set_state(get())
        put(own)
