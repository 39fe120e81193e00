"""Arrow IPC files: how the worker writes the tables it keeps (shards, pseudo-labels, centroids)
and reads them back, and how the pythonia transport hands tables over."""

from __future__ import annotations

import pyarrow as pa

from .atomic import atomic_path


def write_table_file(path: str, table: pa.Table) -> None:
    """An Arrow IPC file, visible under `path` only once complete."""
    with atomic_path(path) as tmp:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)


def read_table_file(path: str) -> pa.Table:
    """Memory-mapped: the returned table shares the file's pages."""
    with pa.memory_map(path, "r") as source:
        return pa.ipc.open_file(source).read_all()
