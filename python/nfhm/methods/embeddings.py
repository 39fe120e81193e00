"""`embeddings.write`: embedding shards made into an embeddings file (nfhm/core/embeddings_file.py)."""

from __future__ import annotations

import os
import time
from typing import Any

from ..core.embeddings_file import embeddings_table, file_format, write_embeddings_file
from ..core.shards import l2_normalize, read_embeddings
from .handler import Handler, Result, Tables
from .state import WorkerState


def write(
    state: WorkerState,
    tables: Tables,
    *,
    shards: list[str],
    out: str,
    normalize: bool,
    metadata: dict[str, Any],
) -> Result:
    """One row per embedded image of table `images` (id, path, label), in shard order; images
    missing from the shards (unreadable ones) have no row."""
    started = time.perf_counter()
    file_format(out)
    images = tables["images"]
    row_of = {int(i): row for row, i in enumerate(images["id"].to_pylist())}
    ids, vectors = read_embeddings(shards)
    rows = [row_of[int(i)] for i in ids]
    paths = images["path"].to_pylist()
    labels = images["label"].to_pylist() if "label" in images.schema.names else None
    if normalize:
        vectors = l2_normalize(vectors)
    table = embeddings_table(
        [paths[r] for r in rows],
        None if labels is None else [labels[r] for r in rows],
        vectors,
        {**metadata, "normalized": normalize, "images": len(rows), "embedding_size": int(vectors.shape[1])},
    )
    write_embeddings_file(out, table)
    return {"rows": len(rows), "dim": int(vectors.shape[1]), "bytes": os.path.getsize(out), "seconds": time.perf_counter() - started}


METHODS: dict[str, Handler] = {"embeddings.write": write}
