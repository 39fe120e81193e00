"""scripts/prepare_fashion_mnist.py on tiny fake idx files (never the real download)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "prepare_fashion_mnist.py"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PER_CLASS = 3  # fake training images per class
N_TEST = 7


def idx_bytes(array: np.ndarray) -> bytes:
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_gz(path: Path, data: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def fake(tmp_path: Path) -> dict:
    """A dataset folder whose raw/ holds small idx files in Fashion-MNIST's format."""
    rng = np.random.default_rng(7)
    train_labels = rng.permutation(np.repeat(np.arange(10), PER_CLASS)).astype(np.uint8)
    data = {
        "train": (rng.integers(0, 256, (len(train_labels), 28, 28), dtype=np.uint8), train_labels),
        "test": (rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
                 rng.integers(0, 10, N_TEST, dtype=np.uint8)),
    }
    raw = tmp_path / "fm" / "raw"
    raw.mkdir(parents=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = data[split]
        write_gz(raw / f"{prefix}-images-idx3-ubyte.gz", idx_bytes(images))
        write_gz(raw / f"{prefix}-labels-idx1-ubyte.gz", idx_bytes(labels))
    return {"out": tmp_path / "fm", **data}


def prepare(out: Path, train_size: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--train-size", str(train_size)],
        capture_output=True, text=True, timeout=120)


def read_rows(out: Path) -> list[dict]:
    with open(out / "fashion-mnist.csv", newline="") as f:
        return list(csv.DictReader(f))


def index_of(row: dict) -> int:
    return int(Path(row["path"]).stem)


def test_writes_pngs_csv_and_marker(fake):
    out = fake["out"]
    result = prepare(out, 20)
    assert result.returncode == 0, result.stderr

    rows = read_rows(out)
    assert list(rows[0]) == ["path", "label", "split"]
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    assert len(rows) == len(train) + len(test)

    # 20 of 30 training images, 2 from each class, listed in idx order.
    train_idx = [index_of(r) for r in train]
    assert train_idx == sorted(set(train_idx)) and len(train_idx) == 20
    assert sorted(r["label"] for r in train) == sorted(CLASS_NAMES * 2)
    # Every test image, in order.
    assert [index_of(r) for r in test] == list(range(N_TEST))

    for split, split_rows in (("train", train), ("test", test)):
        images, labels = fake[split]
        for row in split_rows:
            i = index_of(row)
            assert row["path"] == f"{split}/{i:05d}.png"
            assert row["label"] == CLASS_NAMES[labels[i]]
            with Image.open(out / "images" / row["path"]) as png:
                assert png.mode == "L"
                np.testing.assert_array_equal(np.asarray(png), images[i])
        # No image outside the table.
        assert len(list((out / "images" / split).iterdir())) == len(split_rows)

    ready = json.loads((out / "READY.json").read_text())
    assert ready["train_size"] == 20
    assert ready["counts"] == {"train": 20, "test": N_TEST}
    assert isinstance(ready["seed"], int)
    assert ready["csv_sha256"] == hashlib.sha256((out / "fashion-mnist.csv").read_bytes()).hexdigest()


def test_subset_is_seeded(fake, tmp_path):
    other = tmp_path / "copy"
    (other / "raw").mkdir(parents=True)
    for f in (fake["out"] / "raw").iterdir():
        (other / "raw" / f.name).write_bytes(f.read_bytes())
    assert prepare(fake["out"], 10).returncode == 0
    assert prepare(other, 10).returncode == 0
    rows = read_rows(fake["out"])
    assert rows == read_rows(other)
    # A random draw, not each class's first image (a (1/3)^10 coincidence).
    labels = fake["train"][1]
    firsts = {int(np.flatnonzero(labels == c)[0]) for c in range(10)}
    assert {index_of(r) for r in rows if r["split"] == "train"} != firsts


def test_rerun_does_nothing_and_a_new_size_rebuilds(fake):
    out = fake["out"]
    assert prepare(out, 20).returncode == 0
    csv_path = out / "fashion-mnist.csv"
    png = out / "images" / "test" / "00000.png"
    stamps = (csv_path.stat().st_mtime_ns, png.stat().st_mtime_ns)

    again = prepare(out, 20)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert (csv_path.stat().st_mtime_ns, png.stat().st_mtime_ns) == stamps

    smaller = prepare(out, 10)
    assert smaller.returncode == 0 and "nothing to do" not in smaller.stdout
    assert sum(r["split"] == "train" for r in read_rows(out)) == 10
    assert len(list((out / "images" / "train").iterdir())) == 10  # the 20-image run's extras are gone
    assert json.loads((out / "READY.json").read_text())["train_size"] == 10


def test_partial_output_of_a_killed_run_is_replaced(fake):
    out = fake["out"]
    # What a run killed half-way leaves: some PNGs, one cut short, a stray
    # temporary CSV, no marker.
    (out / "images" / "train").mkdir(parents=True)
    (out / "images" / "train" / "00000.png").write_bytes(b"\x89PNG\r\n")
    (out / "images" / "train" / "99999.png").write_bytes(b"")
    (out / "fashion-mnist.csv.tmp-12345").write_text("path,label,split\n")
    assert prepare(out, 20).returncode == 0
    rows = read_rows(out)
    assert len(list((out / "images" / "train").iterdir())) == 20
    assert not list(out.glob("*.tmp-*"))
    for row in rows:
        with Image.open(out / "images" / row["path"]) as png:
            np.testing.assert_array_equal(np.asarray(png), fake[row["split"]][0][index_of(row)])


def truncated(data: bytes) -> bytes:
    return gzip.compress(data)[:-20]


@pytest.mark.parametrize("name, corrupt, message", [
    ("train-images-idx3-ubyte.gz", lambda b: gzip.compress(b"\x00\x00\x08\x01" + b[4:]), "magic number"),
    ("t10k-labels-idx1-ubyte.gz", lambda b: gzip.compress(b[:-1]), "data bytes"),
    ("train-labels-idx1-ubyte.gz", truncated, "not a complete gzip file"),
    ("t10k-images-idx3-ubyte.gz", lambda b: b, "not a complete gzip file"),  # not gzipped at all
])
def test_corrupt_file_is_named(fake, name, corrupt, message):
    out = fake["out"]
    path = out / "raw" / name
    path.write_bytes(corrupt(gzip.decompress(path.read_bytes())))
    result = prepare(out, 20)
    assert result.returncode == 1
    assert str(path) in result.stderr and message in result.stderr
    assert not (out / "READY.json").exists()


def test_missing_file_points_to_the_fetch_script(fake):
    (fake["out"] / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    result = prepare(fake["out"], 20)
    assert result.returncode == 1 and "fetch-fashion-mnist.sh" in result.stderr


@pytest.mark.parametrize("size", [15, 0, 40])
def test_bad_train_size(fake, size):
    result = prepare(fake["out"], size)
    assert result.returncode != 0
    assert "--train-size" in result.stderr
