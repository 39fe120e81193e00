"""The training images of a session: item (index, seed) -> (augmented tensor, label), each image's
augmentation drawn from a generator of its own seed. Small images are decoded once and kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from .images import BadImage, ImageDataset, UnreadableImage, open_rgb
from .lifetime import die_with_this_process
from .transforms import TrainTransform

# Decode every training image once when they fit in this much memory (small images):
# decoding them again each epoch would cost more than the training step on a small CPU model.
DECODED_CACHE_BYTES = 2 << 30


class TrainImages:
    """Item (index, seed) -> (augmented tensor, label). Decoded images are cached when small."""

    def __init__(self, paths: list[str], labels: np.ndarray, transform: TrainTransform, cache: list[np.ndarray] | None):
        self.paths = paths
        self.labels = labels
        self.transform = transform
        self.cache = cache

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Image.Image:
        if self.cache is not None:
            return Image.fromarray(self.cache[index])
        try:
            return open_rgb(self.paths[index])
        except UnreadableImage as e:
            raise ValueError(f"training image {self.paths[index]}: {e}") from None

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        generator = torch.Generator().manual_seed(seed)
        return self.transform(self.image(index), generator), int(self.labels[index])


def decode_all(paths: list[str], workers: int) -> list[np.ndarray] | None:
    """Every image decoded to uint8 RGB, or None when they would not fit the cache."""
    with open_rgb(paths[0]) as first:
        if first.width * first.height * 3 * len(paths) > DECODED_CACHE_BYTES:
            return None
    decoded = DataLoader(
        ImageDataset(paths, np.asarray),
        batch_size=256,
        num_workers=workers,
        collate_fn=_as_list,
        worker_init_fn=die_with_this_process(),
    )
    images: list[np.ndarray] = []
    for batch in decoded:
        for index, item in batch:
            if isinstance(item, BadImage):
                raise ValueError(f"training image {paths[index]}: {item.reason}")
            images.append(item)
    return images


def _as_list(items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    return items
