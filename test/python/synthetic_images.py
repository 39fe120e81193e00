"""Small, visually distinct synthetic image classes made with numpy (no data downloads)."""

from __future__ import annotations

import numpy as np
from PIL import Image

NUM_PATTERNS = 6


def _pattern(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) mask in [0, 1] for pattern ``kind``, randomly shifted."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    y += rng.uniform(-2, 2)
    x += rng.uniform(-2, 2)
    period = size / 4
    centre = size / 2
    radius = np.hypot(y - centre, x - centre)
    masks = {
        0: np.sin(2 * np.pi * y / period) > 0,  # horizontal stripes
        1: np.sin(2 * np.pi * x / period) > 0,  # vertical stripes
        2: radius < size / 3,  # disc
        3: (np.sin(2 * np.pi * x / period) > 0) ^ (np.sin(2 * np.pi * y / period) > 0),  # checkerboard
        4: np.sin(2 * np.pi * (x + y) / period) > 0,  # diagonal stripes
        5: np.abs(radius - size / 3) < size / 10,  # ring
    }
    return masks[kind].astype(np.float32)


def make_images(count: int, size: int, seed: int) -> tuple[list[Image.Image], np.ndarray]:
    """``count`` RGB images of ``NUM_PATTERNS`` classes (random colours, shifts and noise)
    and their true class ids."""
    rng = np.random.default_rng(seed)
    classes = np.arange(count) % NUM_PATTERNS
    images = []
    for kind in classes:
        mask = _pattern(int(kind), size, rng)[..., None]
        foreground = rng.uniform(0.5, 1.0, size=3)
        background = rng.uniform(0.0, 0.3, size=3)
        pixels = mask * foreground + (1 - mask) * background + rng.normal(0, 0.05, (size, size, 3))
        images.append(Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)))
    return images, classes
