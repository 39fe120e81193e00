"""`files.stat` and `files.read_table`: the orchestrator's view of files the worker wrote.

Embedding shards, pseudo-labels, checkpoints and trained models live on the worker's machine
(which is another machine for a remote worker). The orchestrator asks here whether they exist
and reads the small tables it needs back as Arrow frames, so it never assumes a shared
filesystem. A remote worker answers only for paths under its --allow-dir directories
(nfhm/rpc/confinement.py).
"""

from __future__ import annotations

import os

from ..core.table_files import read_table_file
from .handler import Handler, Result, Tables
from .state import WorkerState


def stat(state: WorkerState, tables: Tables, *, paths: list[str]) -> Result:
    files = []
    for path in paths:
        exists = os.path.isfile(path)
        files.append({"path": path, "exists": exists, "bytes": os.path.getsize(path) if exists else None})
    return {"files": files}


def read_table(state: WorkerState, tables: Tables, *, path: str) -> tuple[Result, Tables]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found on the worker's machine")
    table = read_table_file(path)
    return {"rows": table.num_rows}, {"table": table}


METHODS: dict[str, Handler] = {"files.stat": stat, "files.read_table": read_table}
