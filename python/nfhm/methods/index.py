"""`index.build`, `index.describe` and `index.search`: a faiss index over an embeddings file, and
the nearest indexed images of query embeddings (nfhm/core/vector_index.py)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..core.atomic import atomic_path
from ..core.digest import sha256_file
from ..core.embeddings_file import read_embeddings_file
from ..core.shards import l2_normalize, read_embeddings
from ..core.vector_index import Hnsw, build_index, read_index, read_sidecar, recall_against_exact, write_index, write_sidecar
from .handler import Handler, Result, Tables
from .search import order_ties_by_index
from .state import WorkerState

RESULT_FORMATS = (".parquet", ".csv")


def build(
    state: WorkerState,
    tables: Tables,
    *,
    embeddings: str,
    out: str,
    hnsw: dict[str, int] | None,
    recall_sample: int,
    seed: int,
) -> Result:
    """The index of every row of `embeddings` (L2-normalised here unless the file says they are),
    its sidecar first and the index last, so a complete index file means a complete pair."""
    started = time.perf_counter()
    source = read_embeddings_file(embeddings)
    vectors = source.vectors if source.metadata.get("normalized") else l2_normalize(source.vectors)
    approximate = None if hnsw is None else Hnsw(**hnsw)
    index = build_index(vectors, approximate)
    recall, sampled = (None, 0) if approximate is None else recall_against_exact(index, vectors, recall_sample, seed)
    kind = "flat" if approximate is None else "hnsw"
    metadata = {
        "kind": kind,
        "hnsw": hnsw,
        "rows": len(vectors),
        "embedding_size": int(vectors.shape[1]),
        "model": source.metadata.get("model"),
        "source": os.path.abspath(embeddings),
        "source_sha256": sha256_file(embeddings),
        "recall_at_10": recall,
    }
    sidecar = write_sidecar(out, source.paths, source.labels, metadata)
    write_index(out, index)
    return {
        "rows": len(vectors),
        "dim": int(vectors.shape[1]),
        "kind": kind,
        "recall_at_10": recall,
        "recall_queries": sampled,
        "sidecar": sidecar,
        "seconds": time.perf_counter() - started,
    }


def describe(state: WorkerState, tables: Tables, *, index: str) -> Result:
    """What the index's sidecar records (no index loaded)."""
    _, metadata = read_sidecar(index)
    return metadata


def _write_results(path: str, table: pa.Table) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext not in RESULT_FORMATS:
        raise ValueError(f"{path}: search results are written as .parquet or .csv, not {ext or 'no extension'}")
    with atomic_path(path) as tmp:
        if ext == ".csv":
            pcsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)


def search(
    state: WorkerState, tables: Tables, *, index: str, query_shards: list[str], k: int, out: str
) -> tuple[Result, Tables]:
    """The k nearest indexed images of each query of table `queries` (id, path) that has an
    embedding in `query_shards`: one row per (query, rank), nearest first, ties by index row."""
    started = time.perf_counter()
    indexed = read_index(index)
    if k > indexed.index.ntotal:
        raise ValueError(f"k={k} neighbours asked for, but index {index} holds only {indexed.index.ntotal} images")
    query_ids, queries = read_embeddings(query_shards)
    if queries.shape[1] != indexed.index.d:
        raise ValueError(f"the queries' embeddings have {queries.shape[1]} dimensions but index {index} has {indexed.index.d}")
    scores, rows = order_ties_by_index(*indexed.index.search(l2_normalize(queries), k))
    path_of = dict(zip(tables["queries"]["id"].to_pylist(), tables["queries"]["path"].to_pylist()))
    found = rows.reshape(-1)
    labels: list[Any] = [None] * len(found) if indexed.labels is None else [indexed.labels[r] if r >= 0 else None for r in found]
    table = pa.table(
        {
            "query": pa.array([path_of[int(q)] for q in query_ids for _ in range(k)], type=pa.string()),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), len(query_ids)), type=pa.int32()),
            "path": pa.array([indexed.paths[r] if r >= 0 else None for r in found], type=pa.string()),
            "label": pa.array(labels, type=pa.string()),
            "score": pa.array(scores.reshape(-1), type=pa.float32()),
        }
    )
    _write_results(out, table)
    result = {"queries": len(query_ids), "k": k, "seconds": time.perf_counter() - started}
    return result, {"neighbours": table}


METHODS: dict[str, Handler] = {"index.build": build, "index.describe": describe, "index.search": search}
