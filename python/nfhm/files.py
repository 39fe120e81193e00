"""`files.stat` and `files.read_table`: the orchestrator's view of files the worker wrote.

Embedding shards, pseudo-labels, checkpoints and trained models live on the worker's machine
(which is another machine for a remote worker). The orchestrator asks here whether they exist
and reads the small tables it needs back as Arrow frames, so it never assumes a shared
filesystem. An authenticated client can already run any plug-in, so reading files grants it
nothing new.
"""

from __future__ import annotations

import os
from typing import Any

from . import protocol
from .worker import Tables, Worker, method


@method("files.stat")
def stat(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    files = []
    for path in params["paths"]:
        exists = os.path.isfile(path)
        files.append({"path": path, "exists": exists, "bytes": os.path.getsize(path) if exists else None})
    return {"files": files}


@method("files.read_table")
def read_table(worker: Worker, params: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
    path = params["path"]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found on the worker's machine")
    table = protocol.read_table_file(path)
    return {"rows": table.num_rows}, {"table": table}
