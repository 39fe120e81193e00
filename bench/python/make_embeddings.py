"""Synthetic embedding shards for the benchmarks, in the layout embed.shard writes (nfhm.core.shards).

    python bench/python/make_embeddings.py '{"out_dir": "...", "rows": 30000, "dim": 768, "classes": 100, ...}'

Row i belongs to class (a shuffled) i % classes, every class equally often; its vector is the
class centre (standard normal) plus `spread` times standard normal noise. Ids start at
`first_id`. Writes shard-00000.arrow ... of `shard_rows` rows and labels.arrow (id, label), one
shard at a time so a million rows never sit in memory twice; prints the paths as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pyarrow as pa

from nfhm.core.shards import embedding_table
from nfhm.core.table_files import write_table_file


def main() -> None:
    cfg = json.loads(sys.argv[1])
    rng = np.random.default_rng(cfg["seed"])
    rows, dim, shard_rows = cfg["rows"], cfg["dim"], cfg["shard_rows"]
    centres = rng.standard_normal((cfg["classes"], dim), dtype=np.float32)
    labels = rng.permutation(np.arange(rows) % cfg["classes"]).astype(np.int32)
    ids = np.arange(cfg["first_id"], cfg["first_id"] + rows, dtype=np.int32)
    os.makedirs(cfg["out_dir"], exist_ok=True)
    paths = []
    for start in range(0, rows, shard_rows):
        stop = min(rows, start + shard_rows)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        vectors = centres[labels[start:stop]] + np.float32(cfg["spread"]) * noise
        paths.append(os.path.join(cfg["out_dir"], f"shard-{len(paths):05d}.arrow"))
        write_table_file(paths[-1], embedding_table(ids[start:stop], vectors))
    labels_path = os.path.join(cfg["out_dir"], "labels.arrow")
    write_table_file(labels_path, pa.table({"id": ids, "label": labels}))
    print(json.dumps({"shards": paths, "labels": labels_path}))


if __name__ == "__main__":
    main()
