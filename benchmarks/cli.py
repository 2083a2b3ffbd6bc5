"""``python -m benchmarks``: the framework's training throughput against its floors.

The four loops of ``loops`` train the same model (LeNet-5 + max pool by default) on the same
data, batch size and number of steps, interleaved round by round so that machine noise hits
them alike. It prints images/s (median of the rounds), the ratios, the share of the machine's
measured fp32 peak, packs of K seeds against K solo jobs, the same for other networks
(``--models``, ResNet-20 by default), and the start-up time of ``python -m downsample_study`` to
its first training step. With ``--study`` it also times a whole study, the framework's packed
sweep against a hand-written script (``study``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.loops import LOOPS, RUNNERS, WARMUP_STEPS, compose, framework
from benchmarks.measure import (
    SWEEP_OPERATORS,
    peak_gflops,
    startup_seconds,
    sweep_seconds,
    train_flops_per_image,
    train_images,
)
from benchmarks.study import run_study
from downsample_study import internals
from downsample_study.config.messages import composition_message
from downsample_study.config.validate import validate
from downsample_study.console import quiet_library_noise
from downsample_study.data.datasets import DATASETS
from downsample_study.errors import UserError
from downsample_study.nets.configs import MODELS
from downsample_study.nets.downsample_configs import DOWNSAMPLES
from downsample_study.nets.models import build_model
from downsample_study.training.speed import use_tf32_matmuls


def _count(low: int):
    """An argparse type: an integer of at least ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _network(text: str) -> tuple[str, str]:
    """``MODEL[:OPERATOR]`` as (model, operator); the operator defaults to ``stride2``."""
    model, _, operator = text.partition(":")
    if model not in MODELS.names():
        raise argparse.ArgumentTypeError(f"no model {model!r} (models: "
                                         f"{', '.join(MODELS.names())})")
    operator = operator or "stride2"
    if operator not in DOWNSAMPLES.names():
        raise argparse.ArgumentTypeError(f"no operator {operator!r} (operators: "
                                         f"{', '.join(DOWNSAMPLES.names())})")
    return model, operator


def _parser() -> argparse.ArgumentParser:
    # datasets that have the per-sample form the DataLoader loop needs
    datasets = [name for name in DATASETS.names() if DATASETS[name].per_sample is not None]
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=_count(1), nargs="+", default=[64, 256])
    parser.add_argument("--dataset", default="fashion_mnist", choices=datasets)
    parser.add_argument("--model", default="lenet5", choices=MODELS.names())
    parser.add_argument("--downsample", default="maxpool", choices=DOWNSAMPLES.names())
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=_count(1), default=300,
                        help="timed steps per loop and round")
    parser.add_argument("--rounds", type=_count(1), default=3)
    parser.add_argument("--startup-runs", type=_count(0), default=3)
    parser.add_argument("--sweep", action="store_true",
                        help=f"also time a 4-job sweep (downsample={SWEEP_OPERATORS}, 1 epoch) "
                             "run sequentially and with hydra/launcher=parallel")
    parser.add_argument("--study", action="store_true",
                        help="also time a whole study: the framework's packed sweep against a "
                             "hand-written script (plain_study.py), same seeds, epochs, batch")
    parser.add_argument("--study-seeds", type=_count(1), default=10)
    parser.add_argument("--study-epochs", type=_count(1), default=2)
    parser.add_argument("--study-batch", type=_count(1), default=128)
    parser.add_argument("--pack-sizes", type=_count(1), nargs="*", default=[1, 2, 4, 8, 16],
                        help="pack sizes K to time against K solo jobs one after another "
                             "(at the first batch size; none: skip)")
    parser.add_argument("--pack-steps", type=_count(1), default=100,
                        help="timed steps per pack and round")
    parser.add_argument("--models", type=_network, nargs="*", default=[("resnet20", "stride2")],
                        metavar="MODEL[:OPERATOR]",
                        help="more networks, each timed solo and as a pack of --model-pack "
                             "seeds at the first batch size (default: resnet20:stride2; none: "
                             "skip)")
    parser.add_argument("--model-steps", type=_count(1), default=20,
                        help="timed steps per network, pack and round")
    parser.add_argument("--model-pack", type=_count(2), default=8)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for the framework loop, e.g. "
                             "speed.channels_last=true trainer.precision=bf16-mixed")
    parser.add_argument("--variant", nargs="+", action="append", default=[],
                        metavar=("NAME", "KEY=VALUE"),
                        help="one more framework row, NAME, with these overrides on top of "
                             "--set, interleaved with the loops (repeatable), e.g. "
                             "--variant bf16 trainer.precision=bf16-mixed")
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "./data"))
    parser.add_argument("--cache-dir", default=str(Path("~/.cache/downsample_study").expanduser()))
    return parser


def _with(args: argparse.Namespace, overrides: list[str]) -> argparse.Namespace:
    """``args`` with ``overrides`` after its ``--set``."""
    return argparse.Namespace(**{**vars(args), "set": [*args.set, *overrides]})


def _print_batch(batch_size: int, steps: int, samples: dict[str, list[float]],
                 medians: dict[str, float], flops: float, peak: float) -> None:
    print(f"batch {batch_size} ({steps} timed steps):")
    width = max(18, *map(len, samples))
    print(f"  {'loop':<{width}} {'img/s':>9} {'vs dataloader':>14} {'% of peak':>10}   rounds")
    for loop in samples:
        rate = medians[loop]
        rounds = ", ".join(f"{r:,.0f}" for r in samples[loop])
        print(f"  {loop:<{width}} {rate:>9,.0f} {rate / medians['dataloader_loop']:>14.2f} "
              f"{100 * rate * flops / (peak * 1e9):>9.1f}%   {rounds}")
    print()


def _packing(args, medians: dict) -> dict[int, float]:
    """Images/s of packs of K seeds (all members together) against the framework's solo job
    (K of them one after another train at its rate), interleaved round by round."""
    from benchmarks.loops import packed

    batch_size = args.batch_sizes[0]
    solo = argparse.Namespace(**{**vars(args), "steps": args.pack_steps})
    samples: dict[int, list[float]] = {k: [] for k in args.pack_sizes}
    memory: dict[int, int | None] = {}
    sequential: list[float] = []
    for _ in range(args.rounds):
        sequential.append(framework(solo, batch_size))
        for members in args.pack_sizes:
            rate, memory[members] = packed(args, batch_size, members)
            samples[members].append(rate)
    rate = statistics.median(sequential)
    print(f"packs of K seeds, batch {batch_size} ({args.pack_steps} timed steps), images/s of "
          f"all members together; one after another: {rate:,.0f}")
    ratios = {}
    for members, rates in samples.items():
        ratios[members] = statistics.median(rates) / rate
        peak = "" if memory[members] is None else f"  peak {memory[members] / 2**20:,.0f} MiB"
        print(f"  K={members:<3} {statistics.median(rates):>9,.0f} img/s  "
              f"{ratios[members]:.2f}x{peak}   rounds {', '.join(f'{r:,.0f}' for r in rates)}")
    print()
    return ratios


def _network_args(args, model: str, operator: str) -> argparse.Namespace:
    """``args`` for one ``--models`` network: its model and operator, its steps."""
    return argparse.Namespace(**{**vars(args), "model": model, "downsample": operator,
                                 "steps": args.model_steps, "pack_steps": args.model_steps})


def _networks(args) -> dict[str, float]:
    """Images/s of each ``--models`` network solo and as a pack of ``--model-pack`` seeds
    (all members together), interleaved round by round; each pack's ratio to solo."""
    from benchmarks.loops import packed

    batch_size, members = args.batch_sizes[0], args.model_pack
    print(f"other networks, batch {batch_size} ({args.model_steps} timed steps), images/s; "
          f"a pack of {members} against the solo job run {members} times")
    ratios = {}
    for model, operator in args.models:
        setting = _with(_network_args(args, model, operator),
                        [f"dataset.eval_batch_size={batch_size}"])
        solo, pack = [], []
        for _ in range(args.rounds):
            solo.append(framework(setting, batch_size))
            pack.append(packed(setting, batch_size, members)[0])
        name = f"{model}+{operator}"
        ratios[name] = statistics.median(pack) / statistics.median(solo)
        print(f"  {name:<22} solo {statistics.median(solo):>8,.0f}  K={members} "
              f"{statistics.median(pack):>8,.0f}  {ratios[name]:.2f}x   rounds solo "
              f"{', '.join(f'{r:,.0f}' for r in solo)}; K={members} "
              f"{', '.join(f'{r:,.0f}' for r in pack)}")
    print()
    return ratios


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    args.data_dir = str(Path(args.data_dir).resolve())
    # a variant's row, framework[NAME], and its overrides
    variants = {f"framework[{name}]": overrides for name, *overrides in args.variant}
    # the framework's config, with --set, each variant's and each network's, checked (and each
    # network built on the dataset's images) before anything is timed
    info = DATASETS[args.dataset]
    networks = [(f"--models {model}:{operator}", _network_args(args, model, operator))
                for model, operator in args.models]
    for option, checked in [("--set", args), *(("--variant", _with(args, o))
                                              for o in variants.values()), *networks]:
        try:
            cfg = validate(compose(checked, args.batch_sizes[0]))
            build_model(cfg.model, cfg.downsample, info.input_shape, info.num_classes)
        except UserError as err:
            parser.error(f"{option}: {err}" if option.startswith("--models") else str(err))
        except Exception as err:
            if (message := composition_message(err)) is None:
                raise
            parser.error(f"{option}: {message}")
    if args.study and args.dataset != "fashion_mnist":
        parser.error(f"--study: the plain script trains on fashion_mnist, not {args.dataset}")
    os.environ.setdefault("WANDB_SILENT", "true")
    quiet_library_noise()
    internals.skip_unloadable_nvml_probe()  # as every job does: the hand loops pay what it pays

    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    print(f"model {args.model} + {args.downsample}, {args.dataset}, {args.steps} timed steps "
          f"after {WARMUP_STEPS} warm-up, median of {args.rounds} interleaved rounds")
    peak = peak_gflops(args.device)
    flops = train_flops_per_image(args)
    print(f"fp32 matmul peak {peak:.0f} GFLOP/s; training costs {flops / 1e6:.2f} MFLOP/image\n")
    use_tf32_matmuls()  # as every job does: each loop and round under the same setting

    medians: dict[tuple[str, int], float] = {}
    n_train = train_images(args)
    for batch_size in args.batch_sizes:
        samples: dict[str, list[float]] = {loop: [] for loop in [*LOOPS, *variants]}
        # every loop trains within one epoch of the training split (the framework's epoch
        # ends there), so large batches get fewer steps
        steps = min(args.steps, n_train // batch_size - WARMUP_STEPS)
        if steps < 1:
            parser.error(f"--batch-sizes: {batch_size} leaves no timed step in one epoch")
        loop_args = argparse.Namespace(**{**vars(args), "steps": steps})
        for _ in range(args.rounds):
            for loop in LOOPS:
                samples[loop].append(RUNNERS[loop](loop_args, batch_size))
            for name, overrides in variants.items():
                samples[name].append(framework(_with(loop_args, overrides), batch_size))
        for loop in samples:
            medians[loop, batch_size] = statistics.median(samples[loop])
        _print_batch(batch_size, steps, samples,
                     {loop: medians[loop, batch_size] for loop in samples}, flops, peak)

    packed_ratios = _packing(args, medians) if args.pack_sizes else {}
    network_ratios = _networks(args) if args.models else {}

    if args.startup_runs:
        times = [startup_seconds(args) for _ in range(args.startup_runs)]
        print(f"start-up to first training step: {statistics.median(times):.2f} s "
              f"(median of {', '.join(f'{t:.2f}' for t in times)})\n")

    if args.sweep:
        sequential, parallel = sweep_seconds(args, False), sweep_seconds(args, True)
        print(f"4-job sweep, 1 epoch: sequential {sequential:.1f} s, parallel preset "
              f"{parallel:.1f} s\n")
        print(f"sweep parallel/sequential = {parallel / sequential:.2f}")

    if args.study:
        with tempfile.TemporaryDirectory() as tmp:
            study = run_study(args, Path(tmp))
        (plain, plain_acc), (ours, our_acc) = study["plain_script"], study["framework"]
        print(f"study/plain_script = {plain / ours:.2f}  (test top-1: framework {our_acc:.4f}, "
              f"plain script {plain_acc:.4f})")

    for batch_size in args.batch_sizes[1:]:
        ratio = medians["framework", batch_size] / medians["tensor_loop", batch_size]
        print(f"framework/tensor_loop@{batch_size} = {ratio:.2f}")
    first = args.batch_sizes[0]
    for name in variants:
        for batch_size in args.batch_sizes:
            ratio = medians[name, batch_size] / medians["framework", batch_size]
            print(f"{name}/framework@{batch_size} = {ratio:.2f}")
    for members, ratio in packed_ratios.items():
        print(f"packed/sequential@K={members} = {ratio:.2f}")
    for name, ratio in network_ratios.items():
        print(f"packed/sequential@K={args.model_pack}[{name}] = {ratio:.2f}")
    print(f"framework/tensor_loop_tuned = "
          f"{medians['framework', first] / medians['tensor_loop_tuned', first]:.2f}"
          "  (the framework's own per-step cost)")
    print(f"framework/tensor_loop = "
          f"{medians['framework', first] / medians['tensor_loop', first]:.2f}")
    print(f"framework/dataloader_loop = "
          f"{medians['framework', first] / medians['dataloader_loop', first]:.2f}")
