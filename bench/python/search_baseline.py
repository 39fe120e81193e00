"""faiss called directly on the index `nfhm index` wrote: the baseline of bench/search.ts.

    python bench/python/search_baseline.py '{"index": "x.faiss", "queries": {"1": [shards], "1000": [shards]},
                                             "k": 10, "calls": {"1": 20, "1000": 3}}'

Reads the index once (faiss.read_index, timed apart), then for each batch size runs
`index.search` of that batch's L2-normalised queries `calls` times after one untimed call, and
prints the median seconds per call. For the explanation of nfhm's per-call costs it also times
what index.search does besides faiss's search: nfhm's read_index (the index and its sidecar of
paths and labels) and the Parquet write of one call's results (1,000 queries x k rows).
"""

import json
import statistics
import sys
import tempfile
import time

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nfhm.core.shards import l2_normalize, read_embeddings
from nfhm.core.vector_index import read_index


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    cfg = json.loads(sys.argv[1])
    k = cfg["k"]
    started = time.perf_counter()
    index = faiss.read_index(cfg["index"])
    out = {"read_index_s": time.perf_counter() - started}
    for batch, shards in cfg["queries"].items():
        queries = l2_normalize(read_embeddings(shards)[1])
        index.search(queries, k)
        out[f"batch{batch}_s"] = statistics.median(timed(lambda: index.search(queries, k)) for _ in range(cfg["calls"][batch]))

    out["nfhm_read_index_s"] = timed(lambda: read_index(cfg["index"]))
    rows = 1000 * k
    results = pa.table(
        {
            "query": pa.array([f"queries/{i // k:07d}.png" for i in range(rows)]),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), 1000)),
            "path": pa.array([f"synthetic/{i:07d}.png" for i in range(rows)]),
            "label": pa.array([str(i % 100) for i in range(rows)]),
            "score": pa.array(np.ones(rows, np.float32)),
        }
    )
    with tempfile.NamedTemporaryFile(suffix=".parquet") as f:
        out["parquet_1000_s"] = timed(lambda: pq.write_table(results, f.name))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
