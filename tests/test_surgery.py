"""Module surgery on networks the project did not write: torchvision's and timm's, checked
against the anchors that do this for BlurPool alone: antialiased-cnns (its package), timm's
``aa_layer`` ResNets and Composer's ``apply_blurpool`` (its placement rules, ported below)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from support import launch, results_under
from torch import nn

from downsample_study.errors import ShapeError
from downsample_study.nets.downsample_configs import BlurVariant
from downsample_study.nets.layers import BlurPool, DownsampleLayer
from downsample_study.nets.operators import available_downsamples, downsample_config
from downsample_study.nets.surgery import (
    downsampling_points,
    format_swaps,
    swap_downsampling,
)

ARCHS = ["resnet18", "resnet50", "vgg16", "mobilenet_v2", "densenet121"]


def _net(arch: str) -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.get_model(arch, weights=None, num_classes=10)


def test_blurpool_in_resnet18_sits_where_antialiased_cnns_puts_it():
    """antialiased-cnns 0.3 (Zhang 2019's code): a BlurPool after the stem's max pool (which
    becomes kernel 2, stride 1), after each strided conv1's BN and ReLU (at the head of
    conv2) and at the head of each strided shortcut; the stem conv stays strided."""
    antialiased_cnns = pytest.importorskip("antialiased_cnns")
    theirs = antialiased_cnns.resnet18(pretrained=False)
    where = {"maxpool.1": "maxpool"}  # their blur's place -> the point it anti-aliases
    where.update({f"layer{i}.0.{kind}.0": f"layer{i}.0.{point}" for i in (2, 3, 4)
                  for kind, point in (("conv2", "conv1"), ("downsample", "downsample.0"))})
    their_blurs = {name: m for name, m in theirs.named_modules()
                   if type(m).__name__ == "BlurPool"}
    assert set(their_blurs) == set(where)
    ours = _net("resnet18")
    cfg = downsample_config("blurpool", filter_size=4)  # antialiased-cnns' default for ResNets
    swaps = swap_downsampling(ours, cfg, (3, 64, 64))
    assert [s.name for s in swaps] == sorted(where.values(), key=[s.name for s in swaps].index)
    assert {s.name for s in swaps} == set(where.values())
    for their_name, point in where.items():
        [blur] = [m for m in ours.get_submodule(point).modules() if isinstance(m, BlurPool)]
        torch.testing.assert_close(blur.kernel[0, 0], their_blurs[their_name].filt[0, 0])
    their_pool = theirs.maxpool[0]
    [our_pool] = [m for m in ours.maxpool.modules() if isinstance(m, nn.MaxPool2d)]
    assert (our_pool.kernel_size, our_pool.stride) == (their_pool.kernel_size,
                                                        their_pool.stride) == (2, 1)
    assert ours.conv1.stride == theirs.conv1.stride == (2, 2)  # the RGB stem is left alone


def test_the_points_hold_every_place_timm_anti_aliases_in_its_resnet18():
    """timm's ResNet with ``aa_layer``: a blur after the stem pool (at stride 1) and after each
    strided block's first conv, not in its shortcut, which the points (Zhang's) also take."""
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("resnet18", pretrained=False, aa_layer=timm.layers.BlurPool2d)
    aa = {name.removesuffix(".1").replace(".aa", ".conv1") for name, m in theirs.named_modules()
          if isinstance(m, timm.layers.BlurPool2d)}
    assert aa == {"maxpool", "layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1"}
    net = timm.create_model("resnet18", pretrained=False, num_classes=10)
    swaps = swap_downsampling(net, "blurpool", (3, 32, 32))
    assert aa < {s.name for s in swaps}
    assert {s.name for s in swaps} - aa == {f"layer{i}.0.downsample.0" for i in (2, 3, 4)}
    net(torch.randn(2, 3, 32, 32)).sum().backward()


def _composer_points(model: nn.Module) -> set[str]:
    """Composer's apply_blurpool (composer/algorithms/blurpool/blurpool.py, Apache-2.0): every
    MaxPool2d, and a Conv2d when ``np.max(module.stride) > 1 and module.in_channels >= 16``."""
    return {name for name, m in model.named_modules()
            if isinstance(m, nn.MaxPool2d)
            or (isinstance(m, nn.Conv2d) and max(m.stride) > 1 and m.in_channels >= 16)}


@pytest.mark.parametrize("arch", [*ARCHS, "efficientnet_b0"])
def test_the_points_are_composers_where_both_apply(arch):
    net = _net(arch)
    avg_pools = {name for name, m in net.named_modules() if isinstance(m, nn.AvgPool2d)}
    ours = set(downsampling_points(net))
    assert ours - avg_pools == _composer_points(net)  # Composer leaves average pools alone
    assert all(isinstance(net.get_submodule(n), nn.AvgPool2d) for n in ours & avg_pools)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("operator", available_downsamples())
def test_every_operator_trains_in_every_network_at_every_point(arch, operator):
    net = _net(arch)
    own = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)
           and max(m.stride) > 1 and m.in_channels >= 16]
    swaps = swap_downsampling(net, operator, (3, 32, 32))
    assert [s.name for s in swaps] == downsampling_points(_net(arch))
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    net(x).sum().backward()
    assert x.grad.abs().sum() > 0
    operators = {id(m) for layer in net.modules() if isinstance(layer, DownsampleLayer)
                 for m in layer.modules()}
    strided = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)
               and max(m.stride) > 1 and m.in_channels >= 16 and id(m) not in operators]
    assert strided == (own if operator == "stride2_fold" else [])  # the conv's, or none
    learned = downsample_config(operator).learned
    assert (sum(s.params_added for s in swaps) > 0) == learned


def test_a_conv_keeps_its_weights_and_the_fold_leaves_a_conv_only_network_as_it_was():
    net = _net("mobilenet_v2")  # strided convs only (its RGB stem excepted): no pool
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    expected = net.eval()(x)
    swap_downsampling(net, "stride2_fold", (3, 32, 32))
    torch.testing.assert_close(net(x), expected)
    points = [s.name for s in swap_downsampling(net, "blurpool", (3, 32, 32))]
    after = net.state_dict()
    for key, value in before.items():
        point = next((p for p in points if key.startswith(f"{p}.")), None)
        moved = key if point is None else f"{point}.conv.{key.removeprefix(point + '.')}"
        assert torch.equal(after[moved], value)


def test_the_max_variant_adds_no_max_pool_after_a_strided_conv():
    """Zhang's ConvBlurPool: conv at stride 1, then the blur; MaxBlurPool only for a pool."""
    net = _net("resnet18")
    swap_downsampling(net, downsample_config("blurpool", variant=BlurVariant.max), (3, 32, 32))
    assert [type(m).__name__ for m in net.layer2[0].conv1.down] == ["BlurPool"]
    assert "MaxPool2d" in [type(m).__name__ for m in net.maxpool]  # the operator's layers


@pytest.mark.parametrize(("net", "message"), [
    (nn.Sequential(nn.Conv2d(16, 16, 4, stride=4), nn.Flatten()),
     "0 (Conv2d 16→16 k4 s4): a stride of (4, 4); the operators halve a map"),
    (nn.Sequential(nn.Conv2d(16, 16, 3, stride=2), nn.Flatten()),  # 9 -> 4, but 7 -> 3
     "0: maxpool gives a 16×3×3 map where the network has 16×4×4; this point cannot take it"),
])
def test_a_point_the_operator_cannot_take_is_refused_naming_both(net, message):
    with pytest.raises(ShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        swap_downsampling(net, "maxpool", (16, 9, 9))


def test_the_swap_table_names_each_point_what_it_was_and_is():
    table = format_swaps(swap_downsampling(_net("resnet18"), "maxpool", (3, 32, 32)))
    assert "layer2.0.conv1" in table and "Conv2d 64→128 k3 s2" in table
    assert "Conv2d 64→128 k3 s1 + MaxPool2d k2 s2" in table


def test_a_torchvision_network_trains_through_the_command_line(quick, tmp_path):
    run = launch([*quick, "model=torchvision", "model.arch=mobilenet_v3_small",
                  "downsample=blurpool", "logger=none", "evaluation.feature_maps.enabled=false",
                  "trainer.limit_train_batches=2", "hydra.run.dir=out"])
    assert run.exit_code == 0
    [results] = results_under(tmp_path / "out")
    assert results["status"] == "completed"
    assert results["config"]["model"]["arch"] == "mobilenet_v3_small"


@pytest.mark.parametrize(("model", "arch"), [("torchvision", "resnet18"), ("timm", "resnet18")])
def test_the_small_input_stem_keeps_resolution_for_28_px_images(model, arch):
    from downsample_study.nets.models import build_model, model_config

    if model == "timm":
        pytest.importorskip("timm")
    net = build_model(model_config(model, arch=arch), downsample_config("maxpool"),
                      (1, 28, 28), 10)
    assert net.conv1.in_channels == 1 and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)
    assert sum(isinstance(m, DownsampleLayer) for m in net.modules()) == 6


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "efficientnet_b0"])
def test_a_pack_of_torchvision_networks_steps_as_each_member_alone(arch):
    """A network the packer does not know runs as one copy per member: each member's loss and
    gradients are its solo step's, with its classifier's dropout (and EfficientNet's
    stochastic depth) drawn from the member's generator as from the solo run's global one."""
    import copy

    import lightning as L
    import torch.nn.functional as F

    from downsample_study.nets.models import build_model, model_config
    from downsample_study.nets.packed import PackedNet, member_losses, stack_members

    nets, generators = [], []
    for seed in (0, 1):
        L.seed_everything(seed, verbose=False)
        nets.append(build_model(model_config("torchvision", arch=arch),
                                downsample_config("blurpool"), (1, 28, 28), 10).double())
        generators.append(torch.Generator().set_state(torch.get_rng_state()))
    assert any(isinstance(m, nn.Dropout) and m.p > 0 for m in nets[0].modules())
    packed = PackedNet([copy.deepcopy(n) for n in nets],
                       [torch.Generator().set_state(g.get_state()) for g in generators])
    images = [torch.randn(4, 1, 28, 28, dtype=torch.float64, generator=torch.Generator()
                          .manual_seed(s)) for s in (0, 1)]
    labels = [torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7])]
    torch.manual_seed(99)  # the global generator's state is not what the members draw from
    losses = member_losses(packed(stack_members(images)), torch.stack(labels, 1))
    losses.sum().backward()
    grads = dict(packed.body.named_parameters())
    for k, (net, x, y) in enumerate(zip(nets, images, labels, strict=True)):
        torch.set_rng_state(generators[k].get_state())  # the solo run's global state here
        loss = F.cross_entropy(net(x), y)
        # the member's generator moved on as far as the solo run's global one
        assert torch.equal(packed.generators[k].get_state(), torch.get_rng_state())
        loss.backward()
        assert losses[k].item() == pytest.approx(loss.item(), abs=1e-10)
        for name, parameter in net.named_parameters():
            key, _ = packed.locate(name, k)
            torch.testing.assert_close(packed.member_tensor(name, grads[key].grad, k),
                                       parameter.grad)
