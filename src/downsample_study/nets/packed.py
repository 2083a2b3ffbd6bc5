"""K networks of one architecture as one network: the pack.

Member k owns channels ``k*C … (k+1)*C`` of every map, so a conv becomes one grouped conv, a
BatchNorm one over K × C channels, per-channel layers run unchanged and, after the flatten, a
linear layer is one batched matmul, a residual block packs each branch; any other layer runs
as K copies (correct, only slower), its random draws from each member's own generator.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from downsample_study.nets.kernels.grouped_conv import GroupedConv
from downsample_study.nets.kernels.max_pool import MaxPool2x2
from downsample_study.nets.kernels.one_input_conv import OneInputConv
from downsample_study.nets.layers import BlurPool, DownsampleLayer, EvenSize, Residual, Subsample
from downsample_study.nets.packed_layers import (
    PackedDropout,
    PackedFlatten,
    PackedLinear,
    PerMember,
)

# parameter-free layers that act on each channel (map) alone: shared by the members as they are
PER_CHANNEL = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d, nn.AdaptiveAvgPool2d,
               nn.Identity, nn.ReplicationPad2d, nn.CircularPad2d, nn.ZeroPad2d,
               nn.PixelUnshuffle, EvenSize, Subsample)


def _conv(layers: Sequence[nn.Conv2d]) -> nn.Conv2d:
    first, k = layers[0], len(layers)
    kind = next((kind for kind in (OneInputConv, GroupedConv) if kind.replaces(first, k)),
                nn.Conv2d)
    packed = kind(k * first.in_channels, k * first.out_channels, first.kernel_size,
                       stride=first.stride, padding=first.padding, dilation=first.dilation,
                       groups=k * first.groups, bias=first.bias is not None,
                       padding_mode=first.padding_mode)
    _copy_cat(packed, layers)
    return packed


def _batch_norm(layers: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    first = layers[0]
    packed = type(first)(len(layers) * first.num_features, eps=first.eps,
                         momentum=first.momentum, affine=first.affine,
                         track_running_stats=first.track_running_stats)
    _copy_cat(packed, layers)
    return packed


def _blur(layers: Sequence[BlurPool]) -> BlurPool:
    first = layers[0]
    packed = BlurPool(len(layers) * first.kernel.shape[0], first.kernel.shape[-1])
    _copy_cat(packed, layers)
    return packed


def _copy_cat(packed: nn.Module, layers: Sequence[nn.Module]) -> None:
    """Fill ``packed``'s tensors with the members' concatenated along dim 0 (scalars, such
    as BatchNorm's batch count, are the same for every member)."""
    state = {}
    for name, tensor in layers[0].state_dict().items():
        tensors = [m.state_dict()[name] for m in layers]
        state[name] = tensor.clone() if tensor.dim() == 0 else torch.cat(tensors)
    packed.load_state_dict(state)


def _alone(module: nn.Module) -> nn.Module:
    """An operator's layers that are one layer: that layer; any other module as it is."""
    return module[0] if type(module) is DownsampleLayer and len(module) == 1 else module


def _max_pool(module: nn.Module) -> bool:
    """A max pool alone, or an operator's layers that are one."""
    module = _alone(module)
    return type(module) in (nn.MaxPool2d, MaxPool2x2) and not module.return_indices


def pooled_first(layers: OrderedDict[str, nn.Module]) -> OrderedDict[str, nn.Module]:
    """A sequence's layers with each ReLU that comes right before a max pool moved after it,
    and a ReLU right after a ReLU dropped: the same values and gradients, bit for bit (the
    pool picks the same element; where the two orders differ ReLU's gradient is 0), the ReLU
    on a quarter of the elements. The pack's maps leave the cache: it pays there. The kernel's
    pool then takes the ReLU after it in (one pass less each way)."""
    names, modules = list(layers), list(layers.values())
    for i in range(len(modules) - 1):
        if type(modules[i]) is nn.ReLU and _max_pool(modules[i + 1]):
            names[i], names[i + 1] = names[i + 1], names[i]
            modules[i], modules[i + 1] = modules[i + 1], modules[i]
    kept = [i for i, module in enumerate(modules)
            if not (i > 0 and type(module) is nn.ReLU and type(modules[i - 1]) is nn.ReLU)]
    fused = []
    for i in kept:
        pool = _alone(modules[fused[-1]]) if fused else None
        if type(modules[i]) is nn.ReLU and type(pool) is MaxPool2x2 and not pool.relu:
            pool.relu = True
            continue
        fused.append(i)
    return OrderedDict((names[i], modules[i]) for i in fused)


PACKERS = {nn.Conv2d: _conv, nn.BatchNorm2d: _batch_norm, nn.BatchNorm1d: _batch_norm,
           BlurPool: _blur, nn.Linear: PackedLinear}


class Packer:
    """Builds the pack of ``nets`` and remembers, for every tensor of member k's solo network,
    where in the pack it lives (``locate``)."""

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)
        self.members = len(self.generators)
        # solo key -> (packed key, whether it is a dim-0 slice of a packed tensor)
        self.keys: dict[str, tuple[str, bool]] = {}

    def pack(self, nets: Sequence[nn.Module], prefix: str = "") -> nn.Module:
        first = nets[0]
        if type(first) in (nn.Sequential, DownsampleLayer):
            children = [dict(net.named_children()) for net in nets]
            return type(first)(pooled_first(OrderedDict(
                (name, self.pack([c[name] for c in children], f"{prefix}{name}."))
                for name in children[0])))
        kind = type(first)
        if kind is Residual:  # its sum adds each member's channels to its own
            return Residual(self.pack([n.body for n in nets], f"{prefix}body."),
                            self.pack([n.shortcut for n in nets], f"{prefix}shortcut."))
        if kind in PACKERS:
            self._record_slices(first, prefix)
            return PACKERS[kind](nets)
        if kind is nn.Flatten and first.start_dim == 1 and first.end_dim == -1:
            return PackedFlatten(self.members)
        if kind is nn.Dropout:
            return PackedDropout(first.p, self.generators)
        if kind is nn.MaxPool2d and MaxPool2x2.replaces(first):
            return MaxPool2x2(first.ceil_mode)
        if kind in PER_CHANNEL and not list(first.state_dict()):
            return copy.deepcopy(first)
        for name in first.state_dict():  # any other layer: one copy per member
            self.keys[prefix + name] = {k: f"{prefix}copies.{k}.{name}"
                                        for k in range(self.members)}
        return PerMember([copy.deepcopy(n) for n in nets], self.generators)

    def _record_slices(self, module: nn.Module, prefix: str) -> None:
        """The module's tensors are the members' concatenated: member k's is slice k."""
        for name in module.state_dict():
            self.keys[prefix + name] = (prefix + name, True)


class PackedNet(nn.Module):
    """The pack of K networks: ``(batch, K·C, H, W)`` in, ``(batch, K, classes)`` out.

    ``member_state(k)`` is member k's solo ``state_dict``; ``member_tensor`` maps any
    per-parameter tensor (a gradient, an optimizer's moment) to member k's part.
    """

    def __init__(self, nets: Sequence[nn.Module], generators: Sequence[torch.Generator]):
        super().__init__()
        packer = Packer(generators)
        self.members = len(nets)
        self.body = packer.pack(nets)
        self.generators = packer.generators
        self._keys = packer.keys
        self._shapes = {name: t.shape for name, t in nets[0].state_dict().items()}
        # the solo network's parameter names, in its parameters() order (its optimizer's)
        self.solo_parameters = [name for name, _ in nets[0].named_parameters()]
        if (first := next(nets[0].parameters(), None)) is not None:  # where the members are
            self.to(device=first.device, dtype=first.dtype)

    def generators_on(self, device: torch.device) -> None:
        """Draws the members' dropout masks on ``device`` (a CUDA mask needs a CUDA generator):
        a generator elsewhere gives way to one there, seeded from its own next draw."""
        for k, generator in enumerate(self.generators):
            if generator.device != device:
                seed = int(torch.randint(2**62, (), generator=generator))
                self.generators[k] = torch.Generator(device).manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if out.dim() != 3:  # a network that does not end in features (never: every model does)
            out = out.reshape(out.shape[0], self.members, -1)
        return out

    def locate(self, solo_key: str, k: int) -> tuple[str, bool]:
        """Where member k's ``solo_key`` lives: (packed key, whether it is a slice)."""
        entry = self._keys.get(solo_key, (solo_key, False))
        if isinstance(entry, dict):
            return entry[k], False
        return entry

    def member_tensor(self, solo_key: str, tensor: torch.Tensor, k: int) -> torch.Tensor:
        """Member k's part of ``tensor``, a tensor shaped like the packed ``solo_key``."""
        _, sliced = self.locate(solo_key, k)
        if not sliced or tensor.dim() == 0:
            return tensor.clone()
        # a copy: a view would keep (and save) the whole packed tensor
        return tensor.chunk(self.members, dim=0)[k].reshape(self._shapes[solo_key]).clone()

    @torch.no_grad()
    def load_member_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Member k's part of the pack from its solo ``state_dict`` (a scalar, such as
        BatchNorm's batch count, is the pack's own: no member's part)."""
        packed = self.body.state_dict(keep_vars=True)
        for solo_key, tensor in state.items():
            packed_key, sliced = self.locate(solo_key, k)
            target = packed[packed_key]
            if target.dim() == 0:
                continue
            if sliced:
                target = target.chunk(self.members, dim=0)[k]
            target.copy_(tensor.reshape(target.shape))

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        packed = self.body.state_dict()
        state = {}
        for solo_key in self._shapes:
            packed_key, _ = self.locate(solo_key, k)
            state[solo_key] = self.member_tensor(solo_key, packed[packed_key], k)
        return state


def stack_members(x: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each member's batch ``(batch, C, H, W)`` as the pack's input ``(batch, K·C, H, W)``."""
    return torch.cat(list(x), dim=1)


def member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy, ``(K,)``, from ``(batch, K, classes)`` logits and
    ``(batch, K)`` labels."""
    b, k, c = logits.shape
    losses = F.cross_entropy(logits.reshape(b * k, c), y.reshape(b * k), reduction="none")
    return losses.view(b, k).mean(dim=0)
