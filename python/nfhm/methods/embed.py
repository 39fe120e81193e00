"""`model.resolve`, `model.describe` and `embed.shard`: a model source made into a spec, what a
model spec resolves to, and embedding image files with it.

The model is kept in the worker's state so consecutive shards reuse it, and runs on this rank's
device (CUDA when there is one).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Literal

import numpy as np

from ..core.digest import sha256_if_file
from ..core.embedding import embed_images
from ..core.efficientnet_lite import VARIANTS
from ..core.freeze import freezable_blocks
from ..core.model import CONFIGS
from ..core.model_spec import LoadedModel, ModelSpec, build_model, weights_file
from ..core.atomic import atomic_path
from ..core.shards import embedding_table, read_embeddings
from ..core.sources import ModelSourceError, resolve_model
from ..core.table_files import write_table_file
from ..core.train_step import min_train_batch
from ..core.world import gather_to_leader, part, world
from .handler import Handler, Result, Tables
from .state import WorkerState

NOT_FINITE = "the embedding contains NaN or inf (numerical overflow; precision 'fp32' avoids it)"


def _weights_stamp(weights: str | None) -> list[Any] | None:
    """Size and mtime of the weights file: a retrained file at the same path is a new model."""
    if weights is None or not os.path.isfile(weights):
        return None
    stat = os.stat(weights)
    return [stat.st_size, stat.st_mtime_ns]


def load_model(state: WorkerState, spec: ModelSpec) -> LoadedModel:
    """The model of `spec`, loaded once and reused while the spec and its weights file stay the same."""
    key = json.dumps([spec, _weights_stamp(spec["weights"])], sort_keys=True)
    if state.model is not None and state.model.key == key:
        return state.model
    state.model = None  # one model at a time: release the old one first
    device = world().device()
    model, transform, embedding_size, image_size = build_model(spec, device)
    state.model = LoadedModel(key, model, transform, device, image_size, embedding_size)
    return state.model


def resolve(state: WorkerState, tables: Tables, *, source: dict[str, str]) -> Result:
    """A trained_model.pt, run directory or UNICOM release file (`path`, which a remote worker
    confines), or a model name (`name`, never looked up as a file here)."""
    if "path" in source:
        found = resolve_model(source["path"])
    elif source["name"] in CONFIGS or source["name"] in VARIANTS:
        found = resolve_model(source["name"])
    else:
        raise ModelSourceError(
            f"{source['name']}: not a model name nfhm knows ({', '.join([*CONFIGS, *VARIANTS])}), nor a file or folder here"
        )
    return {"kind": found.kind, "spec": found.spec, "identity": found.identity}


def describe(state: WorkerState, tables: Tables, *, model: ModelSpec) -> Result:
    loaded = load_model(state, model)
    return {
        "embedding_size": loaded.embedding_size,
        "image_size": loaded.image_size,
        # The repr lists every setting of the transform, so any change changes the string.
        "transform": repr(loaded.transform),
        "weights_sha256": sha256_if_file(weights_file(model)),
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        # how many blocks train.freeze may count; None: the model cannot be partly frozen
        "blocks": freezable_blocks(loaded.model),
        "min_train_batch": min_train_batch(loaded.model),
    }


def embed_shard(
    state: WorkerState,
    tables: Tables,
    *,
    model: ModelSpec,
    out: str,
    batch_size: int,
    loader_workers: int,
    precision: Literal["fp32", "bf16", "fp16"],
) -> Result:
    """Each rank of a distributed worker embeds its share of table `images`; rank 0 writes the shard."""
    started = time.perf_counter()
    images = tables["images"]
    ids, paths = images["id"].to_numpy().astype(np.int32), images["path"].to_pylist()
    loaded = load_model(state, model)
    mine = part(len(paths))
    parts = gather_to_leader((mine.start, *embed_images(loaded, paths[mine], batch_size, loader_workers, precision)))
    if parts is None:
        return {}
    vectors = np.concatenate([part[1] for part in parts])
    good = np.concatenate([part[2] for part in parts])
    reasons = {start + i: reason for start, _, _, part_reasons in parts for i, reason in part_reasons.items()}
    not_finite = good & ~np.isfinite(vectors).all(axis=1)
    reasons.update((int(i), NOT_FINITE) for i in np.flatnonzero(not_finite))
    good &= ~not_finite

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_table_file(out, embedding_table(ids[good], vectors[good]))
    bad = [{"id": int(ids[i]), "path": paths[i], "reason": reasons[i]} for i in sorted(reasons)]
    return {
        "rows": int(good.sum()),
        "dim": loaded.embedding_size,
        "bad": bad,
        "seconds": time.perf_counter() - started,
    }


def mean(state: WorkerState, tables: Tables, *, shards: list[str], out: str) -> Result:
    """The mean embedding over `shards`, saved as a float32 .npy (what a centred baseline subtracts)."""
    _, vectors = read_embeddings(shards)
    # float64 accumulation: a float32 sum over 10^5 rows of 10^3 dims loses digits.
    average = vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, average)
    return {"rows": int(vectors.shape[0]), "dim": int(vectors.shape[1])}


METHODS: dict[str, Handler] = {"model.resolve": resolve, "model.describe": describe, "embed.shard": embed_shard, "embed.mean": mean}
COLLECTIVE = frozenset({"embed.shard"})
