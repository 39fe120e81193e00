"""Turns the Fashion-MNIST idx files into the input a group brings: PNG files and a CSV.

    .venv/bin/python scripts/prepare_fashion_mnist.py [--out DIR] [--train-size N]

Reads DIR/raw/*-ubyte.gz (put there by scripts/fetch-fashion-mnist.sh) and writes

    DIR/images/train/<index:05d>.png  a seeded subset of the 60,000 training images,
                                      the same number from each class
    DIR/images/test/<index:05d>.png   all 10,000 test images
    DIR/fashion-mnist.csv             columns path (relative to DIR/images),
                                      label (the class name), split (train|test)
    DIR/READY.json                    written last; while it matches, reruns do nothing

where <index> is the image's position in its idx file. Run with the project's venv.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from nfhm.core.atomic import atomic_path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Label i of the idx files is CLASS_NAMES[i] (Zalando's README).
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SEED = 20240521  # picks the training subset; recorded in READY.json
IDX_FILES = {  # split -> (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CHUNK = 1000  # images per task handed to the worker processes


class DataError(Exception):
    """A missing or corrupt input file; the message names it."""


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Reads a gzipped idx file of unsigned bytes with `ndim` dimensions."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run scripts/fetch-fashion-mnist.sh first") from None
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"{path} is corrupt: not a complete gzip file ({e})") from None
    # idx header: two zero bytes, 0x08 (= unsigned byte), the number of
    # dimensions, then each dimension as a big-endian uint32.
    header = 4 + 4 * ndim
    magic = 0x0800 | ndim
    found = int.from_bytes(data[:4], "big")
    if len(data) < header or found != magic:
        raise DataError(f"{path} is corrupt: magic number {found:#010x}, expected {magic:#010x}")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(data) - header != int(np.prod(shape)):
        raise DataError(f"{path} is corrupt: {len(data) - header} data bytes, "
                        f"but its header announces shape {shape}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def load_split(raw: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = IDX_FILES[split]
    images = read_idx(raw / images_name, 3)
    labels = read_idx(raw / labels_name, 1)
    if len(labels) != len(images):
        raise DataError(f"{raw / labels_name} holds {len(labels)} labels "
                        f"but {raw / images_name} holds {len(images)} images")
    if labels.max(initial=0) >= len(CLASS_NAMES):
        raise DataError(f"{raw / labels_name} is corrupt: label {labels.max()} "
                        f"is not one of the {len(CLASS_NAMES)} classes")
    return images, labels


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` items, size / 10 drawn at random from each class."""
    per_class = size // len(CLASS_NAMES)
    rng = np.random.default_rng(seed)
    picks = []
    for c, name in enumerate(CLASS_NAMES):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise DataError(f"--train-size {size} needs {per_class} images of class "
                            f"{name!r}, but the training set has {len(members)}")
        picks.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(picks))


def write_pngs(task: tuple[str, np.ndarray, np.ndarray]) -> None:
    directory, indices, images = task
    for index, image in zip(indices, images):
        Image.fromarray(image).save(os.path.join(directory, f"{index:05d}.png"), format="PNG")


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def is_ready(marker: Path, csv_path: Path, train_size: int) -> bool:
    try:
        info = json.loads(marker.read_text())
        csv_sha256 = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    except (FileNotFoundError, ValueError):
        return False
    return (info.get("train_size"), info.get("seed"), info.get("csv_sha256")) == (
        train_size, SEED, csv_sha256)


def prepare(out: Path, train_size: int) -> str:
    """Builds the image folder, CSV and marker under `out`; returns a one-line summary."""
    marker, csv_path = out / "READY.json", out / "fashion-mnist.csv"
    if is_ready(marker, csv_path, train_size):
        return f"{out} is already prepared ({train_size} train images); nothing to do"

    # Read and check every input before touching any earlier output.
    splits = {split: load_split(out / "raw", split) for split in IDX_FILES}
    chosen = {"train": stratified_subset(splits["train"][1], train_size, SEED),
              "test": np.arange(len(splits["test"][1]))}

    # Whatever is here came from another --train-size or from a killed run.
    marker.unlink(missing_ok=True)
    shutil.rmtree(out / "images", ignore_errors=True)
    for leftover in out.glob("*.tmp-*"):  # see nfhm.core.atomic
        leftover.unlink()

    rows, tasks = [], []
    for split, (images, labels) in splits.items():
        directory = out / "images" / split
        directory.mkdir(parents=True)
        indices = chosen[split]
        rows += [(f"{split}/{i:05d}.png", CLASS_NAMES[labels[i]], split) for i in indices]
        for part in np.array_split(indices, max(1, -(-len(indices) // CHUNK))):
            tasks.append((str(directory), part, images[part]))
    # PNG encoding and file creation dominate the run time; two processes
    # halve it on the two-core machines the demo targets.
    with multiprocessing.Pool(min(2, os.cpu_count() or 1)) as pool:
        pool.map(write_pngs, tasks)

    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(("path", "label", "split"))
    writer.writerows(rows)
    csv_bytes = table.getvalue().encode()
    write_atomic(csv_path, csv_bytes)
    counts = {"train": len(chosen["train"]), "test": len(chosen["test"])}
    write_atomic(marker, json.dumps({
        "train_size": train_size,
        "seed": SEED,
        "counts": counts,
        "csv_sha256": hashlib.sha256(csv_bytes).hexdigest(),
    }, indent=2).encode() + b"\n")
    return f"wrote {counts['train']} train + {counts['test']} test PNGs and {csv_path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "fashion-mnist",
                        help="dataset folder; the idx files are read from OUT/raw (default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=30000,
                        help="training images to keep, a multiple of 10 (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.train_size <= 0 or args.train_size % len(CLASS_NAMES):
        parser.error(f"--train-size must be a positive multiple of {len(CLASS_NAMES)} "
                     "(an equal share per class)")
    start = time.perf_counter()
    try:
        summary = prepare(args.out, args.train_size)
    except DataError as e:
        print(f"prepare_fashion_mnist: error: {e}", file=sys.stderr)
        return 1
    print(f"prepare_fashion_mnist: {summary} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
