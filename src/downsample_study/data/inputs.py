"""Images from outside a split (a notebook's, a camera's) as a trained network takes them.

The same arithmetic as training's (``batches.normaliser``), so a uint8 image gives the network
the very input its test pass gave it.
"""

from __future__ import annotations

import numpy as np
import torch

from downsample_study.data.batches import normaliser
from downsample_study.data.datasets import ImageDataset


def _as_tensor(images) -> torch.Tensor:
    """A tensor, a numpy array, a PIL image, or a list of any of them (stacked)."""
    from PIL import Image

    def one(image) -> torch.Tensor:
        if isinstance(image, Image.Image):
            return torch.from_numpy(np.array(image))
        return image if torch.is_tensor(image) else torch.as_tensor(np.asarray(image))

    if not isinstance(images, (list, tuple)):
        return one(images)
    items = [one(image) for image in images]
    if len(shapes := {"×".join(map(str, item.shape)) for item in items}) > 1:
        raise ValueError(f"images of different shapes in one list: {', '.join(sorted(shapes))}")
    return torch.stack(items) if items else torch.empty(0)


def _batched(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor | None:
    """``x`` as N × C × H × W: from a batch or one image, channels first or last (numpy's and
    PIL's order), or with no channel axis for one channel; None when it fits none."""
    channels = shape[0]
    one_image = tuple(x.shape) == shape or (x.dim() == 3 and x.shape[-1] == channels
                                            and tuple(x.shape[:2]) == shape[1:])
    if x.dim() == 2 and channels == 1:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[None] if one_image else x[:, None] if channels == 1 else x
    if x.dim() == 4 and tuple(x.shape[1:]) != shape and x.shape[-1] == channels:
        x = x.permute(0, 3, 1, 2)
    return x if x.dim() == 4 and tuple(x.shape[1:]) == shape else None


def net_input(images, dataset: ImageDataset, device: torch.device | str = "cpu") -> torch.Tensor:
    """``images`` normalised for a network trained on ``dataset``: uint8 0–255 (as the dataset
    stores them) or float in [0, 1] (as torchvision's ``ToTensor`` gives them); a batch or
    one image, channels first or last; a tensor, a numpy array or PIL images."""
    x = _as_tensor(images)
    expected = "×".join(map(str, dataset.input_shape))
    got = "×".join(map(str, x.shape)) or "a scalar"
    batch = _batched(x, dataset.input_shape)
    if batch is None:
        raise ValueError(f"images of shape {got}: a network of dataset {dataset.name!r} takes "
                         f"N×{expected} (or one image, {expected})")
    if batch.dtype == torch.uint8:
        batch = batch.float()
    elif not batch.is_floating_point():
        raise ValueError(f"images of dtype {batch.dtype}: expected uint8 (0–255) or float "
                         f"in [0, 1]")
    elif batch.numel() and (batch.min() < 0 or batch.max() > 1):
        raise ValueError(f"float images in [{batch.min():.3g}, {batch.max():.3g}]: expected "
                         f"[0, 1], to be normalised here; images normalised already go to "
                         f"the network itself (run.model)")
    else:
        batch = batch.float() * 255
    scale, shift = normaliser(dataset.mean, dataset.std, "cpu")
    return torch.addcmul(shift, batch, scale).contiguous().to(device)
