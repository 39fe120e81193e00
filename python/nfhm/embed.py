"""`model.describe` and `embed.shard`: what a model spec resolves to, and embedding image files with it.

The model comes from the loader plug-in the spec names (``nfhm.plugins``), is kept in
``worker.state`` so consecutive shards reuse it, and runs on CUDA when there is one. torch is
imported inside the methods: it costs seconds, and every worker start would otherwise pay it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from . import data, plugins, protocol, shards
from .worker import Tables, Worker, method

if TYPE_CHECKING:
    import torch

MODEL_STATE = "embed.model"
RANDOM_INIT_SEED = 0
WEIGHTS_HASHES = "embed.weights_sha256"
NOT_FINITE = "the embedding contains NaN or inf (numerical overflow; precision 'fp32' avoids it)"


@dataclass
class LoadedModel:
    key: str
    model: torch.nn.Module
    transform: Any
    device: torch.device
    image_size: int
    embedding_size: int


def _weights_stamp(weights: str | None) -> list[Any] | None:
    """Size and mtime of the weights file: a retrained file at the same path is a new model."""
    if weights is None or not os.path.isfile(weights):
        return None
    stat = os.stat(weights)
    return [stat.st_size, stat.st_mtime_ns]


def _probe(model: torch.nn.Module, transform: Any, device: torch.device) -> tuple[int, int]:
    """(image size, embedding size), from the transform's output on a blank image and, when the
    model does not say, one forward pass."""
    import torch

    image = transform(Image.new("RGB", (224, 224)))
    embedding_size = getattr(model, "embedding_size", None)
    if embedding_size is None:
        with torch.inference_mode():
            embedding_size = model(image.unsqueeze(0).to(device)).shape[-1]
    return int(image.shape[-1]), int(embedding_size)


def build_model(spec: dict[str, Any], device: torch.device) -> tuple[torch.nn.Module, Any, int, int]:
    """A new instance of the spec's model on `device`: (model, eval transform, embedding size, image size)."""
    import torch

    loader = plugins.resolve(spec["loader"])
    # Only the keywords that are set: UNICOM's own load(name, device, download_root) takes no others.
    extra = {k: spec[k] for k in ("weights", "image_size") if spec[k] is not None}
    # A model without weights starts from a fixed random init: the network that embeds the
    # images for the first k-means is the one training starts from, in every process.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model, transform = loader(spec["name"], device=device, **extra)
    model = model.to(device).eval()  # UNICOM's loader ignores device and returns train mode
    image_size, embedding_size = _probe(model, transform, device)
    return model, transform, embedding_size, image_size


def load_model(worker: Worker, spec: dict[str, Any]) -> LoadedModel:
    """The model of `spec`, loaded once and reused while the spec and its weights file stay the same."""
    import torch

    key = json.dumps([spec, _weights_stamp(spec["weights"])], sort_keys=True)
    cached: LoadedModel | None = worker.state.get(MODEL_STATE)
    if cached is not None and cached.key == key:
        return cached
    from . import distributed

    worker.state.pop(MODEL_STATE, None)  # one model at a time: release the old one first
    device = distributed.world().device()
    model, transform, embedding_size, image_size = build_model(spec, device)
    loaded = LoadedModel(key, model, transform, device, image_size, embedding_size)
    worker.state[MODEL_STATE] = loaded
    return loaded


def weights_sha256(worker: Worker, weights: str | None) -> str | None:
    stamp = _weights_stamp(weights)
    if stamp is None:
        return None
    hashes: dict[str, str] = worker.state.setdefault(WEIGHTS_HASHES, {})
    key = json.dumps([weights, stamp])
    if key not in hashes:
        hashes[key] = data.sha256_file(weights)
    return hashes[key]


@method("model.describe")
def describe(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    spec = params["model"]
    loaded = load_model(worker, spec)
    return {
        "embedding_size": loaded.embedding_size,
        "image_size": loaded.image_size,
        # The repr lists every setting of the transform, so any change changes the string.
        "transform": repr(loaded.transform),
        "weights_sha256": weights_sha256(worker, spec["weights"]),
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
    }


def _image_list(tables: Tables) -> tuple[np.ndarray, list[str]]:
    images = tables.get("images")
    if images is None or not {"id", "path"} <= set(images.schema.names):
        found = None if images is None else images.schema.names
        raise ValueError(f"embed.shard needs a table `images` with columns id and path; got {found}")
    return images["id"].to_numpy().astype(np.int32), images["path"].to_pylist()


def _embed(loaded: LoadedModel, paths: list[str], params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(vectors, readable, reasons by index) for the images at `paths`."""
    import torch
    from torch.utils.data import DataLoader

    from .precision import Precision
    from .threads import cores_shared

    precision = Precision.from_name(params["precision"], loaded.device)
    cuda = loaded.device.type == "cuda"
    batches = DataLoader(
        data.ImageDataset(paths, loaded.transform),
        batch_size=params["batch_size"],
        num_workers=params["loader_workers"],
        pin_memory=cuda,
        collate_fn=data.collate_images,
        worker_init_fn=data.die_with_worker,
    )
    vectors = np.zeros((len(paths), loaded.embedding_size), np.float32)
    good = np.zeros(len(paths), bool)
    reasons: dict[int, str] = {}
    with torch.inference_mode(), cores_shared(params["loader_workers"]):
        for batch in batches:
            reasons.update(batch.bad)
            if batch.images is None:
                continue
            with precision.autocast():
                out = loaded.model(batch.images.to(loaded.device, non_blocking=cuda))
            vectors[batch.indices] = out.float().cpu().numpy()
            good[batch.indices] = True
    return vectors, good, reasons


@method("embed.shard", collective=True)
def embed_shard(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    """Each rank of a distributed worker embeds its share of the images; rank 0 writes the shard."""
    from . import distributed

    started = time.perf_counter()
    ids, paths = _image_list(tables)
    loaded = load_model(worker, params["model"])
    mine = distributed.part(len(paths))
    parts = distributed.gather_to_leader((mine.start, *_embed(loaded, paths[mine], params)))
    if parts is None:
        return {}
    vectors = np.concatenate([part[1] for part in parts])
    good = np.concatenate([part[2] for part in parts])
    reasons = {start + i: reason for start, _, _, part_reasons in parts for i, reason in part_reasons.items()}
    not_finite = good & ~np.isfinite(vectors).all(axis=1)
    reasons.update((int(i), NOT_FINITE) for i in np.flatnonzero(not_finite))
    good &= ~not_finite

    out_path = params["out"]
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    protocol.write_table_file(out_path, shards.embedding_table(ids[good], vectors[good]))
    bad = [{"id": int(ids[i]), "path": paths[i], "reason": reasons[i]} for i in sorted(reasons)]
    return {
        "rows": int(good.sum()),
        "dim": loaded.embedding_size,
        "bad": bad,
        "seconds": time.perf_counter() - started,
    }
