"""The raw-pixel baselines as a loader plug-in: "pixels@S" embeds an image as its S x S RGB pixels.

Plain intensities in [0, 1] (no per-channel normalisation: that weights the channels unequally,
and measured weaker, README "Evaluation"). With `weights` naming a .npy vector (the mean pixel
embedding of the training images, written by the `embed.mean` method), that mean is subtracted
first: the mean-centred baseline, whose cosine similarity ignores what all images share.
Evaluation runs either like any backbone, so its scores show what a learned encoder adds.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch
from torch import nn

from .transforms import EvalTransform

_NAME = re.compile(r"pixels(?:@(\d+))?")
PLAIN = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # mean, std: intensities as they are


class PixelVector(nn.Module):
    """(B, 3, S, S) images in [0, 1] -> (B, 3*S*S), minus `center` when given; no parameters."""

    def __init__(self, image_size: int, center: torch.Tensor | None = None) -> None:
        super().__init__()
        self.image_size = image_size
        self.embedding_size = 3 * image_size * image_size
        self.register_buffer("center", center, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(1)
        return flat if self.center is None else flat - self.center


def _read_center(path: str | os.PathLike[str], size: int) -> torch.Tensor:
    center = np.load(path, allow_pickle=False)
    if center.shape != (3 * size * size,):
        raise ValueError(f"{path}: a pixel mean for pixels@{size} has shape ({3 * size * size},), found {center.shape}")
    return torch.from_numpy(center.astype(np.float32))


def load(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    image_size: int | None = None,
    embedding_size: int | None = None,
) -> tuple[nn.Module, EvalTransform]:
    """UNICOM's loader signature. `name` is "pixels@S"; `image_size`, if given, must agree with S;
    `weights`, if given, is the .npy mean to subtract."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown pixel baseline {name!r}; write it as 'pixels@S', e.g. 'pixels@28'")
    named = int(match.group(1)) if match.group(1) else None
    if named is not None and image_size is not None and named != image_size:
        raise ValueError(f"{name!r} names image size {named} but image_size={image_size} was given")
    size = named or image_size
    if not size:
        raise ValueError(f"{name!r} needs an image size: write 'pixels@S' or pass image_size")
    if embedding_size is not None and embedding_size != 3 * size * size:
        raise ValueError(
            f"model.embedding_size={embedding_size}: {name!r} embeds an image as its {3 * size * size} "
            "pixel values; allowed: null"
        )
    center = None if weights is None else _read_center(weights, size)
    mean, std = PLAIN
    return PixelVector(size, center).to(device).eval(), EvalTransform(size, mean, std)
