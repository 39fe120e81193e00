"""nfhm.api on a real tiny run made by the CLI: the encoder's embeddings are the ones evaluation
used and `embed.shard` writes, PIL input equals path input, and read_run's tables hold what the
run's files hold (read back with pyarrow and json)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import nfhm
from nfhm.core.shards import read_embeddings
from nfhm.core.sources import resolve_model
from float32 import assert_float32_close
from worker_calls import call

REPO = Path(__file__).resolve().parents[2]


def write_digits(root: Path, per_class: int) -> Path:
    """`per_class` of scikit-learn's digits per class as PNG files and a CSV (test/helpers/digits.ts's layout)."""
    digits = load_digits()
    rows = []
    for label in range(10):
        for n, i in enumerate(np.flatnonzero(digits.target == label)[:per_class]):
            name = f"{label}/{n:03d}.png"
            (root / "images" / str(label)).mkdir(parents=True, exist_ok=True)
            pixels = (digits.images[i] * (255 / 16)).round().astype(np.uint8)
            Image.fromarray(pixels, "L").save(root / "images" / name)
            rows.append((name, f"digit-{label}"))
    with open(root / "digits.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    return root / "digits.csv"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`nfhm run` of ViT-T on 300 digits: one short epoch, evaluated against the initial model."""
    root = tmp_path_factory.mktemp("api")
    table = write_digits(root / "digits", per_class=30)
    config = root / "digits.yaml"
    config.write_text(
        "\n".join(
            [
                "name: digits",
                f"runs_dir: {root / 'runs'}",
                f"data: {{table: {table}, image_root: {table.parent / 'images'}, split: {{by: image, test_fraction: 0.3333, seed: 0}}}}",
                "model: {name: ViT-T/4@28px}",
                "embed: {loader_workers: 0}",
                "cluster: {k: 10, niter: 10}",
                "train: {epochs: 1, batch_size: 64, lr: 1.0e-3, loader_workers: 0, augment: {randaug_ops: 0, erasing_prob: 0}}",
                "eval: {baselines: [initial], bootstrap: 50}",
                "",
            ]
        )
    )
    done = subprocess.run(
        ["node", str(REPO / "bin" / "nfhm.js"), "run", str(config)], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    return root / "runs" / "digits"


def read_arrow(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as f:
        return pa.ipc.open_file(f).read_all()


def eval_entry(run_dir: Path, name: str) -> dict:
    return next(e for e in json.loads((run_dir / "eval.json").read_text()) if e["name"] == name)


def test_the_encoder_embeds_as_evaluation_did(run_dir: Path) -> None:
    images = read_arrow(run_dir / "images.arrow").to_pandas()
    entry = eval_entry(run_dir, "round 1")
    ids, expected = read_embeddings(sorted(str(p) for p in Path(entry["embeddings"]).glob("shard-*.arrow")))
    paths = images.set_index("id").loc[ids, "path"].tolist()
    assert len(paths) == 100  # the test split

    encoder = nfhm.load_encoder(run_dir)
    assert encoder.identity["round"] == 1 and encoder.identity["kind"] == "run"
    assert (encoder.embedding_size, encoder.image_size) == (32, 28)
    # Evaluation embedded in batches of 256; sums in another batch order differ by rounding.
    assert_float32_close(encoder.embed(paths), expected, k=64, what="api vs eval's shards")


def test_the_encoder_equals_embed_shard_and_takes_pil_images(run_dir: Path, tmp_path: Path) -> None:
    images = read_arrow(run_dir / "images.arrow").slice(0, 40)
    encoder = nfhm.load_encoder(run_dir / "round-1" / "train" / "trained_model.pt")
    call(
        "embed.shard",
        {"model": resolve_model(run_dir).spec, "out": str(tmp_path / "shard.arrow"), "batch_size": 64, "loader_workers": 0, "precision": "fp32"},
        {"images": images.select(["id", "path"])},
    )
    ids, shard = read_embeddings([str(tmp_path / "shard.arrow")])
    paths = images["path"].to_pylist()
    assert ids.tolist() == images["id"].to_pylist()
    vectors = encoder.embed(paths)
    assert vectors.dtype == np.float32 and vectors.shape == (40, 32)
    assert_float32_close(vectors, shard, k=16, what="api vs embed.shard")

    # Every other image as a PIL image (8-bit grey, as the files hold them), in one list with paths.
    mixed = [Image.open(p) if i % 2 else Path(p) for i, p in enumerate(paths)]
    assert_float32_close(encoder.embed(mixed, batch_size=7), vectors, k=16, what="PIL and paths vs paths")

    unit = encoder.embed(paths, normalize=True)
    assert_float32_close(unit, vectors / np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True), k=8, what="normalised")


def test_an_unreadable_image_is_named(run_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n but nothing after the signature")
    encoder = nfhm.load_encoder(run_dir)
    with pytest.raises(ValueError, match=f"1 of 2 images cannot be read: {broken}: "):
        encoder.embed([read_arrow(run_dir / "images.arrow")["path"][0].as_py(), broken])
    floats = Image.fromarray(np.zeros((28, 28), np.float32), "F")
    with pytest.raises(ValueError, match=r"1 of 1 images cannot be read: images\[0\] \(a PIL image\): 32-bit floating-point"):
        encoder.embed([floats])
    with pytest.raises(TypeError, match="embed takes a list of images; got one PosixPath"):
        encoder.embed(broken)  # type: ignore[arg-type]


def test_read_run_holds_the_run_files(run_dir: Path) -> None:
    run = nfhm.read_run(run_dir)
    assert run.manifest == json.loads((run_dir / "manifest.json").read_text())
    assert run.images.equals(read_arrow(run_dir / "images.arrow").to_pandas())

    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(run.metrics) == len(steps) > 0
    assert run.metrics["loss"].tolist() == [s["loss"] for s in steps]
    assert run.metrics["step"].tolist() == [s["step"] for s in steps]

    labels = run.pseudo_labels(1)
    assert labels.equals(read_arrow(run_dir / "round-1" / "cluster" / "pseudo_labels.arrow").to_pandas())
    with pytest.raises(ValueError, match="round-2/cluster/pseudo_labels.arrow: no such file .*round-1"):
        run.pseudo_labels(2)

    evaluation = run.evaluation.set_index(["model", "metric"])
    for name in ("random init", "round 1"):
        entry = eval_entry(run_dir, name)
        for metric, interval in entry["metrics"].items():
            assert evaluation.loc[(name, metric)].tolist() == [interval["estimate"], interval["lower"], interval["upper"]]
        nmi = entry["clustering"]["nmi"]
        assert evaluation.loc[(name, "nmi")].tolist() == [nmi["estimate"], nmi["lower"], nmi["upper"]]
        assert evaluation.loc[(name, "purity"), "value"] == entry["clustering"]["purity"]
        assert np.isnan(evaluation.loc[(name, "purity"), "low"])
    assert len(run.evaluation) == 2 * (len(entry["metrics"]) + 4)  # + nmi, ami, ari, purity


def test_read_run_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"{tmp_path}: not a run directory"):
        nfhm.read_run(tmp_path)
