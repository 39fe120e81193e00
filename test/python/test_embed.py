"""model.describe, embed.shard and the raw-pixel plug-in, on real image files."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from nfhm.core.images import open_rgb
from nfhm.core.model import create_model, load
from nfhm.core.pixels import load as load_pixels
from nfhm.core.table_files import read_table_file
from nfhm.core.transforms import EvalTransform
from nfhm.methods.state import WorkerState
from float32 import assert_float32_close
from worker_calls import call, call_error

SMALL = "ViT-T/4@28px"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "vit_t.pt"
    torch.save(create_model(SMALL).state_dict(), path)
    return str(path)


def spec(weights: str | None = None, name: str = SMALL, loader: str = "nfhm.core.model:load", image_size=None):
    return {"loader": loader, "name": name, "weights": weights, "image_size": image_size, "embedding_size": None}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """(ids, paths, bad ids): good images of several sizes and modes, shuffled among bad files."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(9):
        shape = [(28, 28, 3), (40, 31, 3), (50, 64)][i % 3]
        path = root / f"good{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(str(path))
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("not an image")
    bad = [str(root / "empty.png"), str(root / "notes.jpg"), str(root / "gone.png")]
    order = [0, 9, 1, 2, 10, 3, 4, 5, 11, 6, 7, 8]
    all_paths = [(paths + bad)[i] for i in order]
    ids = [1000 - 7 * i for i in range(len(all_paths))]  # ids are not row numbers
    bad_ids = [ids[j] for j, i in enumerate(order) if i >= 9]
    return ids, all_paths, bad_ids


def images_table(ids, paths) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int32()), "path": pa.array(paths, pa.string())})


def embed(state, model_spec, ids, paths, out, workers=0, precision="fp32", batch_size=4):
    params = {"model": model_spec, "out": str(out), "batch_size": batch_size, "loader_workers": workers, "precision": precision}
    return call("embed.shard", params, {"images": images_table(ids, paths)}, state)[0]


def read_shard(path):
    table = read_table_file(str(path))
    return table["id"].to_pylist(), np.asarray(table["embedding"].to_pylist(), np.float32), table.schema


def test_embed_shard_equals_a_plain_loop_and_lists_every_bad_file(tmp_path, weights, collection):
    ids, paths, bad_ids = collection
    result = embed(WorkerState(), spec(weights), ids, paths, tmp_path / "sub" / "shard.arrow")

    model, transform = load(SMALL, weights)
    good = [(i, p) for i, p in zip(ids, paths) if i not in bad_ids]
    with torch.inference_mode():
        expected = np.stack([model(transform(open_rgb(p)).unsqueeze(0))[0].numpy() for _, p in good])
    out_ids, vectors, schema = read_shard(tmp_path / "sub" / "shard.arrow")
    assert schema.field("id").type == pa.int32()
    assert schema.field("embedding").type == pa.list_(pa.float32(), model.embedding_size)
    assert out_ids == [i for i, _ in good]  # input order, bad ones left out
    # Batches of images against one at a time: the same sums blocked differently (the widest: the
    # head's flattened tokens, 1,568 terms, whose rounding mostly cancels), allowed 64 roundings.
    assert_float32_close(vectors, expected, 64, "embeddings")
    assert result["rows"] == len(good) and result["dim"] == model.embedding_size and result["seconds"] > 0
    reasons = {b["id"]: (b["path"], b["reason"]) for b in result["bad"]}
    assert sorted(reasons) == sorted(bad_ids)
    assert all(paths[ids.index(i)] == p for i, (p, _) in reasons.items())
    by_name = {os.path.basename(p): reason for p, reason in reasons.values()}
    assert by_name["empty.png"] == "empty file (0 bytes)" and by_name["gone.png"] == "file not found"
    assert by_name["notes.jpg"].startswith("not an image")


def test_loader_workers_give_the_same_rows_and_the_model_is_loaded_once(tmp_path, weights, collection):
    ids, paths, _ = collection
    state = WorkerState()
    embed(state, spec(weights), ids, paths, tmp_path / "a.arrow", workers=0)
    loaded = state.model
    embed(state, spec(weights), ids, paths, tmp_path / "b.arrow", workers=2, batch_size=3)
    assert state.model is loaded
    a, b = read_shard(tmp_path / "a.arrow"), read_shard(tmp_path / "b.arrow")
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_a_rewritten_weights_file_is_a_new_model(tmp_path, collection):
    ids, paths, _ = collection
    path = str(tmp_path / "w.pt")
    state = WorkerState()
    torch.manual_seed(1)
    torch.save(create_model(SMALL).state_dict(), path)
    first = call("model.describe", {"model": spec(path)}, state=state)[0]
    embed(state, spec(path), ids[:2], paths[:2], tmp_path / "1.arrow")
    torch.manual_seed(2)
    torch.save(create_model(SMALL).state_dict(), path)
    os.utime(path, ns=(1, 1))  # a distinct mtime even on coarse-clock file systems
    second = call("model.describe", {"model": spec(path)}, state=state)[0]
    embed(state, spec(path), ids[:2], paths[:2], tmp_path / "2.arrow")
    assert first["weights_sha256"] != second["weights_sha256"]
    assert not np.allclose(read_shard(tmp_path / "1.arrow")[1], read_shard(tmp_path / "2.arrow")[1])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_stays_close_to_fp32(tmp_path, weights, collection, precision):
    ids, paths, _ = collection
    state = WorkerState()
    embed(state, spec(weights), ids, paths, tmp_path / "fp32.arrow")
    embed(state, spec(weights), ids, paths, tmp_path / "low.arrow", precision=precision)
    full, low = read_shard(tmp_path / "fp32.arrow")[1], read_shard(tmp_path / "low.arrow")[1]
    cosine = (full * low).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(low, axis=1)
    assert cosine.min() > 0.99


def test_a_shard_of_only_bad_images_writes_an_empty_file_of_the_right_width(tmp_path, weights):
    result = embed(WorkerState(), spec(weights), [1, 2], [str(tmp_path / "no.png"), str(tmp_path / "pe.png")], tmp_path / "e.arrow")
    out_ids, _, schema = read_shard(tmp_path / "e.arrow")
    assert out_ids == [] and result["rows"] == 0 and len(result["bad"]) == 2
    assert schema.field("embedding").type.list_size == result["dim"] == create_model(SMALL).embedding_size


def test_describe_reports_sizes_transform_hash_and_parameters(weights):
    result = call("model.describe", {"model": spec(weights)})[0]
    model = create_model(SMALL)
    assert result == {
        "embedding_size": model.embedding_size,
        "image_size": 28,
        "transform": repr(EvalTransform(28)),
        "weights_sha256": hashlib.sha256(open(weights, "rb").read()).hexdigest(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "blocks": 2,  # what train.freeze may count
        "min_train_batch": 16,  # its BatchNorm head's least batch
    }


def test_describe_finds_the_embedding_size_by_a_forward_pass_when_the_model_does_not_say(monkeypatch):
    monkeypatch.delattr("nfhm.core.model.VisionTransformer.embedding_size")
    assert call("model.describe", {"model": spec()})[0]["embedding_size"] == create_model(SMALL).config.embedding_size


def test_an_unknown_loader_or_missing_images_table_is_a_clear_error(tmp_path):
    message = call_error("model.describe", {"model": spec(loader="nfhm.nothing:load")})["message"]
    assert "nfhm.nothing" in message
    params = {"model": spec(), "out": str(tmp_path / "x.arrow"), "batch_size": 2, "loader_workers": 0, "precision": "fp32"}
    assert "`images`" in call_error("embed.shard", params)["message"]


# --- the raw-pixel baseline ---------------------------------------------------------------


def test_pixels_embed_plain_intensities(tmp_path, collection):
    ids, paths, bad_ids = collection
    pixels = spec(name="pixels@16", loader="nfhm.core.pixels:load")
    embed(WorkerState(), pixels, ids, paths, tmp_path / "p.arrow")
    # The reference: the models' normalised transform, normalisation undone (x * std + mean).
    normalised = EvalTransform(16)
    std = torch.tensor(normalised.std).view(3, 1, 1)
    mean = torch.tensor(normalised.mean).view(3, 1, 1)
    good = [p for i, p in zip(ids, paths) if i not in bad_ids]
    expected = np.stack([(normalised(open_rgb(p)) * std + mean).reshape(-1).numpy() for p in good])
    got = read_shard(tmp_path / "p.arrow")[1]
    assert got.min() >= 0 and got.max() <= 1
    # Values in [0, 1] through a divide and a multiply-add: a few float32 ulps at magnitude 1.
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 * 2**-24)


def test_pixels_centred_on_the_mean_that_embed_mean_writes(tmp_path, collection):
    ids, paths, bad_ids = collection
    plain = spec(name="pixels@16", loader="nfhm.core.pixels:load")
    embed(WorkerState(), plain, ids, paths, tmp_path / "p.arrow")
    mean_file = tmp_path / "mean.npy"
    result = call("embed.mean", {"shards": [str(tmp_path / "p.arrow")], "out": str(mean_file)})[0]
    vectors = read_shard(tmp_path / "p.arrow")[1]
    assert result == {"rows": len(vectors), "dim": 3 * 16 * 16}
    np.testing.assert_allclose(np.load(mean_file), vectors.astype(np.float64).mean(0), rtol=0, atol=1e-6)
    centred = spec(name="pixels@16", loader="nfhm.core.pixels:load", weights=str(mean_file))
    embed(WorkerState(), centred, ids, paths, tmp_path / "c.arrow")
    # Subtracting a float32 mean from values in [0, 1]: exact to float32 rounding at magnitude 1.
    np.testing.assert_allclose(read_shard(tmp_path / "c.arrow")[1], vectors - np.load(mean_file), rtol=0, atol=2**-23)


def test_pixels_describe_and_name_rules(tmp_path):
    described = call("model.describe", {"model": spec(name="pixels@28", loader="nfhm.core.pixels:load")})[0]
    assert described["embedding_size"] == 3 * 28 * 28 and described["image_size"] == 28
    assert described["parameters"] == 0 and described["weights_sha256"] is None
    assert described["min_train_batch"] == 1  # no BatchNorm
    other = call("model.describe", {"model": spec(name="pixels", loader="nfhm.core.pixels:load", image_size=32)})[0]
    assert other["transform"] != described["transform"] and other["embedding_size"] == 3 * 32 * 32
    np.save(tmp_path / "wrong.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(2352,\), found \(5,\)"):
        load_pixels("pixels@28", weights=tmp_path / "wrong.npy")
    with pytest.raises(ValueError, match="image_size=32"):
        load_pixels("pixels@28", image_size=32)
    with pytest.raises(ValueError, match="pixels@S"):
        load_pixels("pixel28")
