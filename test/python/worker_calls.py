"""Calling worker methods the way every transport does (nfhm.rpc.registry's dispatch), for tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from nfhm.core.shards import embedding_table
from nfhm.core.table_files import write_table_file
from nfhm.methods.state import WorkerState
from nfhm.rpc.registry import Registry

REGISTRY = Registry()


def call(
    name: str, params: dict[str, Any], tables: dict[str, pa.Table] | None = None, state: WorkerState | None = None
):
    """(result, tables) of a successful call; fails the test with the worker's traceback otherwise."""
    reply, out_tables = REGISTRY.dispatch(state or WorkerState(), name, params, tables or {})
    assert reply["ok"], reply["error"]["traceback"]
    return reply["result"], out_tables


def call_error(name: str, params: dict[str, Any], tables: dict[str, pa.Table] | None = None) -> dict[str, Any]:
    """The error reply of a call that must fail: {"type", "message", "traceback", "bad_input"}."""
    reply, _ = REGISTRY.dispatch(WorkerState(), name, params, tables or {})
    assert not reply["ok"], f"{name} succeeded but should have failed: {reply['result']}"
    return reply["error"]


def write_shard(path: str, ids: Any, vectors: np.ndarray) -> str:
    write_table_file(str(path), embedding_table(np.asarray(ids), np.asarray(vectors, np.float32)))
    return str(path)
