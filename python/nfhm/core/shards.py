"""Embedding shards: the Arrow IPC files embed.shard writes and cluster/search read.

One shard is a table of layout `embedding_shard` (id int32, embedding FixedSizeList<float32>[E]);
ids identify images across shards, so they must be unique over every shard read together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from .contract import check_table
from .table_files import read_table_file

EXAMPLES = 5  # ids or paths named in one error message


def embedding_table(ids: np.ndarray, vectors: np.ndarray) -> pa.Table:
    """The shard layout: one row per image, the raw (not normalised) embedding as a fixed-size list."""
    dim = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.table(
        {
            "id": pa.array(np.asarray(ids, dtype=np.int32), type=pa.int32()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )


def _read_shard(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"embedding shard {path} not found")
    table = read_table_file(path)
    check_table(table, "embedding_shard", f"embedding shard {path}")
    ids = table["id"].to_numpy().astype(np.int32, copy=False)
    # flatten() honours the offsets of sliced chunks, which .values would not.
    chunks = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in table["embedding"].chunks]
    flat = np.concatenate(chunks) if chunks else np.empty(0, np.float32)
    return ids, flat.reshape(-1, table.schema.field("embedding").type.list_size)


def read_embeddings(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids int32 (n,), vectors float32 C-contiguous (n, E)) over all shards, in shard order."""
    if not paths:
        raise ValueError("no embedding shards given")
    shards = [_read_shard(path) for path in paths]
    dims = {path: vectors.shape[1] for path, (_, vectors) in zip(paths, shards)}
    if len(set(dims.values())) > 1:
        raise ValueError(f"embedding shards disagree on the embedding size: {dims}")
    ids = np.concatenate([shard_ids for shard_ids, _ in shards])
    vectors = np.ascontiguousarray(np.concatenate([shard_vectors for _, shard_vectors in shards]), dtype=np.float32)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = unique[counts > 1]
        raise ValueError(
            f"{len(repeated)} image ids occur more than once in the shards {list(paths)}, e.g. "
            f"{repeated[:EXAMPLES].tolist()}; each image must be embedded once"
        )
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"{int((~finite).sum())} embeddings contain NaN or inf (ids {ids[~finite][:EXAMPLES].tolist()}) "
            f"in {list(paths)}; embed them again (precision 'fp32' avoids fp16 overflow)"
        )
    return ids, vectors


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero instead of becoming NaN."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, np.finfo(np.float32).tiny), dtype=np.float32)
