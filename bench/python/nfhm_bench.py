"""Worker methods that only the benchmarks use (loaded with NFHM_WORKER_EXTENSIONS=nfhm_bench).

Loaded with NFHM_BENCH_FROZEN_CACHE=off, it also turns off the frozen-part cache (bench/frozen.ts).

`bench.make_embeddings` draws a table of embeddings into the worker's memory (and writes the
same table as an Arrow IPC file, for the baseline to read); `bench.embeddings` returns it, so
that bench/transfer.ts times the bridge alone.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nfhm.core import freeze
from nfhm.core.shards import embedding_table
from nfhm.core.table_files import write_table_file
from nfhm.methods.handler import Handler, Result, Tables
from nfhm.methods.state import WorkerState

TABLE = "bench.embeddings"


def make_embeddings(state: WorkerState, tables: Tables, *, seed: int, rows: int, dim: int, path: str | None) -> Result:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((rows, dim), dtype=np.float32)
    table = embedding_table(np.arange(rows), vectors)
    state.extensions[TABLE] = table
    if path is not None:
        write_table_file(path, table)
    return {"bytes": table.nbytes}


def embeddings(state: WorkerState, tables: Tables) -> tuple[dict[str, Any], Tables]:
    return {}, {"table": state.extensions[TABLE]}


METHODS: dict[str, Handler] = {"bench.make_embeddings": make_embeddings, "bench.embeddings": embeddings}


# bench/frozen.ts's baseline: the frozen-part cache turned off by a cap of 0 bytes, which is
# the path training takes when the cache would not fit (nfhm/core/freeze.py).
if os.environ.get("NFHM_BENCH_FROZEN_CACHE") == "off":
    freeze.FROZEN_CACHE_BYTES = 0
