"""Embeddings files, what `nfhm embed` writes and `nfhm index` reads: one row per image with its
`path`, its `label` when the input has labels, and its `embedding` (fixed_size_list<float32>[E]),
as Parquet or an Arrow IPC file by the name's extension. The schema metadata key `nfhm` holds
JSON saying how the file was made (the model's identity, whether the rows are L2-normalised, the
image count, the images skipped, nfhm's version); pandas and polars read either format as is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .table_files import read_table_file, write_table_file

METADATA_KEY = b"nfhm"
FORMATS = (".parquet", ".arrow")


@dataclass(frozen=True)
class EmbeddingsFile:
    paths: list[str]
    labels: list[str | None] | None  # None: the input had no labels
    vectors: np.ndarray  # (n, E) float32, C-contiguous
    metadata: dict[str, Any]


def file_format(path: str) -> str:
    """".parquet" or ".arrow", from the name; anything else is refused, naming the file."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: an embeddings file is .parquet or .arrow (Arrow IPC), not {ext or 'no extension'}")
    return ext


def embeddings_table(
    paths: list[str], labels: list[str | None] | None, vectors: np.ndarray, metadata: dict[str, Any]
) -> pa.Table:
    columns: dict[str, pa.Array] = {"path": pa.array(paths, type=pa.string())}
    if labels is not None:
        columns["label"] = pa.array(labels, type=pa.string())
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    table = pa.table(columns)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})


def write_embeddings_file(path: str, table: pa.Table) -> None:
    """Parquet or Arrow IPC by extension, visible under `path` only once complete."""
    if file_format(path) == ".arrow":
        write_table_file(path, table)
        return
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_embeddings_file(path: str) -> EmbeddingsFile:
    """The rows and metadata of an embeddings file; errors name the file and what is wrong."""
    ext = file_format(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"embeddings file {path} not found")
    table = read_table_file(path) if ext == ".arrow" else pq.read_table(path)
    missing = [c for c in ("path", "embedding") if c not in table.schema.names]
    if missing:
        raise ValueError(f"{path}: no column {missing} (an embeddings file has path, label and embedding; `nfhm embed` writes one)")
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path}: no `nfhm` metadata: not written by `nfhm embed`")
    column = table["embedding"].combine_chunks()
    kind = column.type
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind)) or not pa.types.is_floating(kind.value_type):
        raise ValueError(f"{path}: column embedding should be a list of floats, found {kind}")
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    rows = table.num_rows
    if rows == 0 or flat.size % rows:
        raise ValueError(f"{path}: {rows} rows whose embeddings are not all of one size")
    vectors = np.ascontiguousarray(flat.reshape(rows, -1))
    if not np.isfinite(vectors).all():
        raise ValueError(f"{path}: embeddings contain NaN or inf")
    labels = table["label"].to_pylist() if "label" in table.schema.names else None
    return EmbeddingsFile(table["path"].to_pylist(), labels, vectors, json.loads(raw))
