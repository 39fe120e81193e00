"""Calling worker methods the way every transport does (nfhm.worker.dispatch), for tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from nfhm.protocol import write_table_file
from nfhm.shards import embedding_table
from nfhm.worker import Worker, dispatch


def call(name: str, params: dict[str, Any], tables: dict[str, pa.Table] | None = None, worker: Worker | None = None):
    """(result, tables) of a successful call; fails the test with the worker's traceback otherwise."""
    reply, out_tables = dispatch(worker or Worker(), name, params, tables or {})
    assert reply["ok"], reply["error"]["traceback"]
    return reply["result"], out_tables


def call_error(name: str, params: dict[str, Any], tables: dict[str, pa.Table] | None = None) -> dict[str, str]:
    """The error reply of a call that must fail: {"type", "message", "traceback"}."""
    reply, _ = dispatch(Worker(), name, params, tables or {})
    assert not reply["ok"], f"{name} succeeded but should have failed: {reply['result']}"
    return reply["error"]


def write_shard(path: str, ids: Any, vectors: np.ndarray) -> str:
    write_table_file(str(path), embedding_table(np.asarray(ids), np.asarray(vectors, np.float32)))
    return str(path)
