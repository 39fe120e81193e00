"""Synthetic training images for scripts/gpu-check.sh: JPEG files and a CSV, the way users bring them.

    python scripts/gpu_check_images.py OUT_DIR COUNT SIZE CLASSES

Each image is a smooth random colour field with a class-dependent stripe pattern, so that
decoding and augmentation cost what natural photos of that size cost (noise would not
compress; flat colour would decode too fast). Written by a pool of processes.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import sys

import numpy as np
from PIL import Image


def draw(args: tuple[str, int, int, int]) -> None:
    path, index, size, label = args
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = 2 * np.pi * label / 97
    stripes = np.sin(2 * np.pi * (4 + label % 7) * (x * np.cos(angle) + y * np.sin(angle)))
    field = sum(rng.uniform(-1, 1) * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * x + rng.uniform(0.5, 3) * y)) for _ in range(4))
    pixels = np.stack([0.5 + 0.25 * stripes + 0.15 * field * rng.uniform(0.5, 1.5) for _ in range(3)], axis=-1)
    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path, quality=90)


def main(out: str, count: int, size: int, classes: int) -> None:
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    jobs = [(os.path.join(out, "images", f"{i:06d}.jpg"), i, size, i % classes) for i in range(count)]
    with multiprocessing.Pool() as pool:
        pool.map(draw, jobs, chunksize=64)
    with open(os.path.join(out, "images.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows((path, f"class-{label}", "train") for path, _, _, label in jobs)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
