"""A study written by hand: LeNet-5 + max pool on FashionMNIST, one seed after another.

The baseline of ``--study``. The network is imported so that both sides train the same module
(layers, initialisation); data, split, optimizer and loops are written here. It tests the last
epoch, where the framework tests the checkpoint of its best validation epoch.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.datasets import FashionMNIST

from downsample_study.nets.models import build_model, model_config
from downsample_study.nets.operators import downsample_config

MEAN, STD = 0.2860, 0.3530  # FashionMNIST's, as the framework normalises it
SPLIT_SEED = 0  # the framework's dataset.split_seed: the same validation images for every seed
EVAL_BATCH = 1000  # the framework's dataset.eval_batch_size
FILES = [f"{split}-{kind}-ubyte" for split in ("train", "t10k")
         for kind in ("images-idx3", "labels-idx1")]


def readable_root(data_dir: Path, scratch: Path) -> Path:
    """``data_dir`` if it holds the uncompressed files torchvision reads, else ``scratch``
    with its ``.gz`` copies decompressed (torchvision would only try to download them)."""
    raw = data_dir / "FashionMNIST" / "raw"
    if all((raw / name).is_file() for name in FILES):
        return data_dir
    (scratch / "FashionMNIST" / "raw").mkdir(parents=True)
    for name in FILES:
        with gzip.open(raw / f"{name}.gz") as src, \
                open(scratch / "FashionMNIST" / "raw" / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return scratch


def load(root: Path, train: bool, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as normalised float images (N×1×28×28) and labels, on ``device``, once."""
    data = FashionMNIST(str(root), train=train, download=False)
    images = (data.data.float().div(255).unsqueeze(1) - MEAN) / STD
    return images.to(device), data.targets.to(device)


@torch.no_grad()
def accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    net.eval()
    correct = sum(int((net(images[i : i + EVAL_BATCH]).argmax(1) == labels[i : i + EVAL_BATCH])
                      .sum()) for i in range(0, len(labels), EVAL_BATCH))
    return correct / len(labels)


def train_seed(seed: int, train, val, test, args) -> tuple[float, float]:
    """Train one seed; its last epoch's validation and test accuracy."""
    torch.manual_seed(seed)
    net = build_model(model_config(args.model), downsample_config(args.downsample),
                      (1, 28, 28), 10).to(args.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999))
    images, labels = train
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(labels), device=args.device)
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            loss = F.cross_entropy(net(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val_acc = accuracy(net, *val)
        print(f"  seed {seed} epoch {epoch + 1}: loss {loss.item():.4f}, val top-1 {val_acc:.4f}",
              flush=True)
    return val_acc, accuracy(net, *test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plain_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="holds FashionMNIST/raw/ (uncompressed or .gz IDX files)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=1e-3)  # the framework's Adam defaults
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--downsample", default="maxpool")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        root = readable_root(args.data_dir, Path(scratch))
        images, labels = load(root, train=True, device=args.device)
        test = load(root, train=False, device=args.device)
    # the framework's split: a fixed permutation, its first val_size images held out
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    order = order.to(args.device)
    val_index, train_index = order[: args.val_size], order[args.val_size :]
    train = images[train_index], labels[train_index]
    val = images[val_index], labels[val_index]

    accuracies = []
    for seed in range(args.seeds):
        start = time.perf_counter()
        val_acc, test_acc = train_seed(seed, train, val, test, args)
        accuracies.append(test_acc)
        print(f"seed {seed}: val top-1 {val_acc:.4f}, test top-1 {test_acc:.4f} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"test top-1, mean of {args.seeds} seeds: {sum(accuracies) / len(accuracies):.4f}")


if __name__ == "__main__":
    main()
