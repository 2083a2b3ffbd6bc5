"""Data: torchvision parses the real formats; batches come from one uint8 tensor by index."""

from __future__ import annotations

import gzip
import itertools
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch

from downsample_study.data.batches import Split, TensorBatches, random_crop_flip
from downsample_study.data.datamodule import MemberBatches
from downsample_study.data.datasets import DatasetConfig, load_splits
from downsample_study.errors import DataError


def load(name: str, root: Path, cache: Path, **kw):
    return load_splits(DatasetConfig(name=name, **kw), root, cache)


@pytest.mark.parametrize(
    ("name", "kw", "shape"),
    [
        ("mnist", {}, (1, 28, 28)),  # gzipped, like ../shared/data
        ("fashion_mnist", {}, (1, 28, 28)),  # uncompressed
        ("cifar10", {"verify_checksums": False}, (3, 32, 32)),
    ],
)
def test_splits_parse_into_uint8_tensors(name, kw, shape, data_dir, tmp_path):
    train, test = load(name, data_dir, tmp_path / "cache", **kw)
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == shape
    assert (len(train), len(test)) == (700, 200)
    assert set(train.labels.tolist()) == set(range(10))


def test_gzipped_and_plain_idx_files_give_identical_tensors(data_dir, tmp_path):
    plain = tmp_path / "plain" / "MNIST" / "raw"
    plain.mkdir(parents=True)
    for gz in (data_dir / "MNIST" / "raw").glob("*.gz"):
        with gzip.open(gz) as src, open(plain / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    from_gz, _ = load("mnist", data_dir, tmp_path / "cache")
    from_plain, _ = load("mnist", tmp_path / "plain", tmp_path / "unused")
    assert torch.equal(from_gz.images, from_plain.images)
    assert not (tmp_path / "unused").exists()  # plain files are read in place
    assert not list((data_dir / "MNIST" / "raw").glob("*-ubyte"))  # data folder untouched


def test_cifar_checksum_check_is_kept_and_explains_the_switch(data_dir, tmp_path):
    with pytest.raises(DataError, match=r"dataset\.verify_checksums=false"):
        load("cifar10", data_dir, tmp_path)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_files_name_the_expected_paths(name, tmp_path):
    with pytest.raises(DataError) as err:
        load(name, tmp_path / "empty", tmp_path / "cache", download=False)
    message = str(err.value)
    expected = "MNIST/raw/train-images-idx3-ubyte" if name == "mnist" else "data_batch_1"
    assert expected in message and "paths.data_dir" in message


def _split(n: int = 10) -> Split:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return Split(images, torch.arange(n))


def test_batches_normalise_and_cover_each_image_once():
    batches = TensorBatches(_split(10), 4, mean=(0.5,), std=(0.25,))
    xs, ys = zip(*batches)
    assert len(batches) == len(xs) == 3
    assert torch.equal(torch.cat(ys), torch.arange(10))
    expected = (torch.arange(10).float() / 255 - 0.5) / 0.25
    assert torch.allclose(torch.cat(xs)[:, 0, 0, 0], expected)


def test_shuffle_depends_on_seed_and_epoch_only():
    epoch = [0]

    def order(seed):
        batches = TensorBatches(_split(50), 50, (0.0,), (1.0,), shuffle=True, seed=seed,
                                epoch=lambda: epoch[0])
        return next(iter(batches))[1]

    first = order(1)
    assert torch.equal(first, order(1)) and not torch.equal(first, order(2))
    epoch[0] = 1
    assert not torch.equal(first, order(1))
    assert sorted(first.tolist()) == list(range(50))


@pytest.mark.parametrize(("n", "world"), [(10, 2), (11, 2), (11, 3)])
def test_distributed_shards(n, world):
    def labels(rank, shuffle):
        b = TensorBatches(_split(n), 4, (0.0,), (1.0,), shuffle=shuffle, rank=rank,
                          world_size=world)
        return [y for _, ys in b for y in ys.tolist()]

    evaluation = [labels(r, False) for r in range(world)]
    assert sorted(itertools.chain(*evaluation)) == list(range(n))  # every sample exactly once
    training = [labels(r, True) for r in range(world)]
    assert len({len(t) for t in training}) == 1  # equal steps per process
    assert len(set(itertools.chain(*training))) == world * (n // world)  # disjoint shards


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("resumed_after", [None, 2])
def test_a_packs_batches_are_its_members_own_bit_for_bit(augment, resumed_after):
    """Gathered and normalised at once, each member's images, labels and augmentation draws
    are those of its own batches, in its seed's order, after a resume too."""
    images = torch.randint(0, 256, (23, 3, 6, 6), dtype=torch.uint8)
    split = Split(images, torch.arange(23))

    def members() -> list[TensorBatches]:
        return [TensorBatches(split, 5, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), shuffle=True,
                              seed=seed, augment=augment) for seed in (3, 1, 4)]

    packed, alone = MemberBatches(members()), members()
    if resumed_after is not None:
        packed.load_state_dict({"epoch": 0, "completed": resumed_after})
        for batches in alone:
            batches.load_state_dict({"epoch": 0, "completed": resumed_after})
    together = list(packed)
    apart = list(zip(*alone, strict=True))
    assert len(together) == len(apart) == 5 - (resumed_after or 0)
    for (x, y), members_batches in zip(together, apart, strict=True):
        assert torch.equal(x, torch.cat([mx for mx, _ in members_batches], dim=1))
        assert torch.equal(y, torch.stack([my for _, my in members_batches], dim=1))


def test_random_crop_flip_keeps_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float).view(2, 3, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    # each output image is a shifted (maybe flipped) window of its own input: values it
    # keeps are a subset of the image's values plus padding zeros
    for i in range(2):
        kept = set(out[i].unique().tolist()) - {0.0}
        assert kept <= set(x[i].unique().tolist())
    none = random_crop_flip(x, torch.Generator().manual_seed(0), pad=0)
    flipped_or_same = [torch.equal(none[i], x[i]) or torch.equal(none[i], x[i].flip(-1))
                       for i in range(2)]
    assert all(flipped_or_same)


# --- files that exist but are broken or disagree ----------------------------------------------


def copy_of(data_dir: Path, folder: str, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(data_dir / folder, root / folder)
    return root


def rewrite_labels(raw: Path, labels: list[int]) -> None:
    """``train-labels-idx1-ubyte`` of an uncompressed IDX dataset, with other labels."""
    header = struct.pack(">II", 0x0801, len(labels))
    (raw / "train-labels-idx1-ubyte").write_bytes(header + bytes(labels))


def test_a_truncated_gzip_file_names_the_file_and_leaves_nothing_in_the_cache(
    data_dir, tmp_path
):
    root = copy_of(data_dir, "MNIST", tmp_path)
    gz = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])  # a download cut short
    with pytest.raises(DataError, match="not a complete gzip file") as err:
        load("mnist", root, tmp_path / "cache")
    assert str(gz) in str(err.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no temp file


@pytest.mark.parametrize(("labels", "message"), [
    ([0, 1, 2] * 200, "has 700 images but 600 labels"),
    ([12] + [0] * 699, "has labels 0 to 12; its 10 classes are 0 to 9"),
])
def test_files_that_disagree_are_refused_not_trained_on(labels, message, data_dir, tmp_path):
    root = copy_of(data_dir, "FashionMNIST", tmp_path)
    rewrite_labels(root / "FashionMNIST" / "raw", labels)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        load("fashion_mnist", root, tmp_path / "cache")
    assert "paths.data_dir=" in str(err.value) and "training split" in str(err.value)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_download_leaves_nothing_in_the_data_folder(name, existed, tmp_path):
    data = tmp_path / "data"
    if existed:
        (data / "mine").mkdir(parents=True)  # the user's own file stays
    with pytest.raises(DataError, match="not found or unusable"):  # no network here
        load(name, data, tmp_path / "cache", download=True)
    assert sorted(p.name for p in data.rglob("*")) == (["mine"] if existed else [])
    assert data.exists() == existed


def test_a_broken_data_file_is_one_line_on_the_command_line(data_dir, quick, tmp_path, capsys):
    from support import launch

    root = copy_of(data_dir, "MNIST", tmp_path)
    gz = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(b"not gzip at all")
    run = launch([*quick, f"paths.data_dir={root}", "logger=none", "hydra.run.dir=out"], capsys)
    assert run.exit_code == 1
    [line] = [line for line in run.output.splitlines() if "error:" in line]
    assert str(gz) in line and "Traceback" not in run.output


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
@pytest.mark.parametrize("download", [False, True])
def test_a_data_dir_that_is_a_file_is_named_as_one(name, download, tmp_path):
    data = tmp_path / "data.tar"
    data.write_bytes(b"an archive, not its folder")
    with pytest.raises(DataError, match=re.escape(f"paths.data_dir={data}: a file, not a folder")):
        load(name, data, tmp_path / "cache", download=download)
    assert data.read_bytes() == b"an archive, not its folder"


def test_every_dataset_names_its_classes_or_none():
    from downsample_study.data.datasets import DATASETS, register_dataset

    for name in DATASETS.names():
        info = DATASETS[name]
        assert len(info.classes) in (0, info.num_classes), name
    assert DATASETS["fashion_mnist"].classes[:2] == ("T-shirt/top", "Trouser")
    assert DATASETS["cifar10"].classes[0] == "airplane"
    with pytest.raises(ValueError, match="'two': 1 class names for 2 classes"):
        register_dataset("two", channels=1, size=8, num_classes=2, mean=(0.5,), std=(0.5,),
                         classes=("one",))
