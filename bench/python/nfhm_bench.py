"""Worker methods that only the benchmarks use (loaded with NFHM_WORKER_EXTENSIONS=nfhm_bench).

`bench.make_embeddings` draws a table of embeddings into the worker's memory (and writes the
same table as an Arrow IPC file, for the baseline to read); `bench.embeddings` returns it, so
that bench/transfer.ts times the bridge alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nfhm import protocol, shards
from nfhm.worker import Tables, Worker, method

TABLE = "bench.embeddings"


@method("bench.make_embeddings")
def make_embeddings(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    rng = np.random.default_rng(params["seed"])
    vectors = rng.standard_normal((params["rows"], params["dim"]), dtype=np.float32)
    table = shards.embedding_table(np.arange(params["rows"]), vectors)
    worker.state[TABLE] = table
    if params["path"] is not None:
        protocol.write_table_file(params["path"], table)
    return {"bytes": table.nbytes}


@method("bench.embeddings")
def embeddings(worker: Worker, params: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
    return {}, {"table": worker.state[TABLE]}
