"""Inference cost: the keys, the inputs timed, the passes made and the memory counted. No
assertion on a time: times only have to be there, positive and consistent with each other."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from downsample_study.data.batches import Split
from downsample_study.evaluations.base import EvaluationData
from downsample_study.evaluations.configs import CostConfig
from downsample_study.evaluations.cost import MB, cost, cpu_peak_bytes

MEAN, STD = (0.2,), (0.3,)
SIDE = 12
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def data_of(n: int = 5, device: str = "cpu") -> EvaluationData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, SIDE, SIDE), dtype=torch.uint8, generator=generator)
    split = Split(images, torch.arange(n) % 10).to(torch.device(device))
    return EvaluationData(split, MEAN, STD, batch_size=4, num_classes=10, seed=0)


def conv_net(channels: int = 8) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.Dropout(0.5),
                         nn.Flatten(), nn.Linear(channels * SIDE * SIDE, 10)).eval()


class Calls:
    """A forward pre-hook on a net: each pass's input, mode and inference-mode state."""

    def __init__(self, net: nn.Module):
        self.inputs: list[torch.Tensor] = []
        self.states: list[tuple[bool, bool]] = []
        net.register_forward_pre_hook(self.record)

    def record(self, module: nn.Module, args: tuple) -> None:
        self.inputs.append(args[0].clone())
        self.states.append((module.training, torch.is_inference_mode_enabled()))


@pytest.mark.parametrize("batch_sizes", [[1], [1, 3], [7, 2]])
def test_every_batch_size_has_its_latency_and_throughput(batch_sizes):
    result = cost(conv_net(), data_of(), CostConfig(batch_sizes=batch_sizes, repeats=3, warmup=1))
    expected = {f"{key}_b{b}" for b in batch_sizes for key in ("latency_ms", "images_per_s")}
    assert set(result.summary) == expected | {"peak_memory_mb"}
    assert all(math.isfinite(v) and v > 0 for v in result.summary.values())
    details = result.details
    json.dumps(details)  # plain JSON data
    assert set(details["times_s"]) == {str(b) for b in batch_sizes}
    for b in batch_sizes:
        times = details["times_s"][str(b)]
        assert len(times) == 3 and all(t > 0 for t in times)
        median = sorted(times)[1]
        assert result.summary[f"latency_ms_b{b}"] == pytest.approx(1000 * median)
        assert result.summary[f"images_per_s_b{b}"] == pytest.approx(b / median)
    assert result.summary["peak_memory_mb"] == details["peak_memory_mb"][str(max(batch_sizes))]
    assert details["threads"] == torch.get_num_threads()
    assert details["device_type"] == "cpu" and details["device"]


@pytest.mark.parametrize("batch_size", [3, 5, 12])
def test_the_inputs_are_normalised_test_images_repeated_to_the_batch_size(batch_size):
    net, data = conv_net(), data_of(n=5)
    calls = Calls(net)
    cost(net, data, CostConfig(batch_sizes=[batch_size], repeats=2, warmup=1))
    index = torch.arange(batch_size) % 5
    expected = (data.test.images[index].float() / 255 - MEAN[0]) / STD[0]
    assert len(calls.inputs) == 4
    for x in calls.inputs:
        assert x.shape == (batch_size, 1, SIDE, SIDE)
        torch.testing.assert_close(x, expected)
    assert set(calls.states) == {(False, True)}  # eval mode, inference mode


@pytest.mark.parametrize(("repeats", "warmup"), [(1, 0), (3, 2), (5, 0), (2, 4)])
def test_each_batch_size_is_run_warmup_plus_repeats_plus_once_for_memory(repeats, warmup):
    net = conv_net()
    calls = Calls(net)
    result = cost(net, data_of(), CostConfig(batch_sizes=[1, 4], repeats=repeats, warmup=warmup))
    assert [len(x) for x in calls.inputs] == (
        [1] * (warmup + repeats + 1) + [4] * (warmup + repeats + 1))
    assert all(len(t) == repeats for t in result.details["times_s"].values())


def test_the_cpu_peak_is_the_most_held_at_once_not_all_allocated():
    # each tanh allocates its output and the next frees it: two activations held at most,
    # six allocated in all, the input (allocated before) not counted
    net = nn.Sequential(*[nn.Tanh() for _ in range(6)])
    x = torch.randn(8, 4, SIDE, SIDE)
    with torch.inference_mode():
        assert cpu_peak_bytes(net, x) == 2 * x.numel() * 4


def test_peak_memory_grows_with_the_batch_size():
    result = cost(conv_net(channels=16), data_of(),
                  CostConfig(batch_sizes=[1, 8, 64], repeats=1, warmup=0))
    peaks = [result.details["peak_memory_mb"][str(b)] for b in (1, 8, 64)]
    assert peaks == sorted(set(peaks))
    # the conv's output and the ReLU's are both held at the ReLU
    for b, peak in zip((1, 8, 64), peaks):
        assert peak >= 2 * b * 16 * SIDE * SIDE * 4 / MB


@pytest.mark.parametrize("training", [False, True])
def test_the_net_is_left_as_found(training):
    net = conv_net().train(training)
    net[0].bias.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = {name: p.requires_grad for name, p in net.named_parameters()}
    calls = Calls(net)
    cost(net, data_of(), CostConfig(batch_sizes=[2], repeats=2, warmup=1))
    assert {state for state, _ in calls.states} == {False}  # timed in eval mode
    assert net.training is training
    assert {name: p.requires_grad for name, p in net.named_parameters()} == grads
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.mark.cuda
@cuda
def test_on_cuda_the_allocator_counts_the_peak():
    net = conv_net(channels=16).cuda()
    result = cost(net, data_of(device="cuda"),
                  CostConfig(batch_sizes=[1, 64, 512], repeats=2, warmup=1))
    peaks = [result.details["peak_memory_mb"][str(b)] for b in (1, 64, 512)]
    assert peaks == sorted(set(peaks)) and peaks[-1] >= 2 * 512 * 16 * SIDE * SIDE * 4 / MB
    assert result.details["device_type"] == "cuda"
    assert result.details["device"] == torch.cuda.get_device_name()
    assert all(v > 0 for v in result.summary.values())
