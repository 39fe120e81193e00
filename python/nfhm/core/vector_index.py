"""A faiss index over an embeddings file, for cosine similarity (inner product of L2-normalised
rows): exact (IndexFlatIP), or approximate (HNSW, IndexHNSWFlat) with its recall@10 against exact
measured when built. Beside the index file, a sidecar Arrow file `<index>.rows.arrow` holds each
row's path and label; its schema metadata `nfhm` says what the index was built from (the
embeddings file and its sha256, the model, the embedding size, the kind of index).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from .atomic import atomic_path
from .table_files import read_table_file, write_table_file

METADATA_KEY = b"nfhm"
RECALL_K = 10


@dataclass(frozen=True)
class Hnsw:
    m: int  # links per node
    ef_construction: int
    ef_search: int


def sidecar_path(index_path: str) -> str:
    return f"{index_path}.rows.arrow"


def build_index(vectors: np.ndarray, hnsw: Hnsw | None) -> faiss.Index:
    """An inner-product index over `vectors` (already L2-normalised: the scores are cosines)."""
    dim = vectors.shape[1]
    if hnsw is None:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, hnsw.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = hnsw.ef_construction
        index.hnsw.efSearch = hnsw.ef_search
    index.add(vectors)
    return index


def recall_against_exact(index: faiss.Index, vectors: np.ndarray, sample: int, seed: int) -> tuple[float, int]:
    """(recall@10 of `index` against exact search, the number of queries): a seeded sample of the
    rows as queries; recall = the share of each query's exact 10 nearest that `index` finds."""
    k = min(RECALL_K, len(vectors))
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size=min(sample, len(vectors)), replace=False))
    queries = vectors[rows]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = sum(len(np.intersect1d(t, f)) for t, f in zip(truth, found))
    return hits / (k * len(rows)), len(rows)


def write_index(path: str, index: faiss.Index) -> None:
    with atomic_path(path) as tmp:
        faiss.write_index(index, tmp)


def write_sidecar(index_path: str, paths: list[str], labels: list[str | None] | None, metadata: dict[str, Any]) -> str:
    columns: dict[str, pa.Array] = {"path": pa.array(paths, type=pa.string())}
    if labels is not None:
        columns["label"] = pa.array(labels, type=pa.string())
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
    path = sidecar_path(index_path)
    write_table_file(path, table)
    return path


@dataclass(frozen=True)
class IndexFiles:
    index: faiss.Index
    paths: list[str]
    labels: list[str | None] | None
    metadata: dict[str, Any]


def read_sidecar(index_path: str) -> tuple[pa.Table, dict[str, Any]]:
    path = sidecar_path(index_path)
    if not os.path.isfile(index_path):
        raise FileNotFoundError(f"index {index_path} not found")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"index {index_path} has no {os.path.basename(path)} beside it: build it with `nfhm index`")
    table = read_table_file(path)
    return table, json.loads((table.schema.metadata or {})[METADATA_KEY])


def read_index(index_path: str) -> IndexFiles:
    table, metadata = read_sidecar(index_path)
    index = faiss.read_index(index_path)
    if index.ntotal != table.num_rows:
        raise ValueError(f"index {index_path} holds {index.ntotal} rows but its sidecar lists {table.num_rows}: build it again")
    labels = table["label"].to_pylist() if "label" in table.schema.names else None
    return IndexFiles(index, table["path"].to_pylist(), labels, metadata)
