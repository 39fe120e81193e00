"""The raw-pixel baseline as a loader plug-in: "pixels@S" embeds an image as its S x S pixels.

Evaluation runs it like any backbone (same transform, same normalisation afterwards), so its
retrieval scores show how much a learned encoder adds over comparing pixels.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from .transforms import EvalTransform

_NAME = re.compile(r"pixels(?:@(\d+))?")


class PixelVector(nn.Module):
    """(B, 3, S, S) normalised images -> (B, 3*S*S): the pixels themselves, no parameters."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.embedding_size = 3 * image_size * image_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def load(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    image_size: int | None = None,
) -> tuple[nn.Module, EvalTransform]:
    """UNICOM's loader signature. `name` is "pixels@S"; `image_size`, if given, must agree with S."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown pixel baseline {name!r}; write it as 'pixels@S', e.g. 'pixels@28'")
    if weights is not None:
        raise ValueError(f"the pixel baseline {name!r} has no weights; got {weights!r}")
    named = int(match.group(1)) if match.group(1) else None
    if named is not None and image_size is not None and named != image_size:
        raise ValueError(f"{name!r} names image size {named} but image_size={image_size} was given")
    size = named or image_size
    if not size:
        raise ValueError(f"{name!r} needs an image size: write 'pixels@S' or pass image_size")
    return PixelVector(size).to(device).eval(), EvalTransform(size)
