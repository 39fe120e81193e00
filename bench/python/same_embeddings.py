"""Whether two embeddings files hold the same rows: bench/use-embed.ts's check that nfhm and its
baseline did the same job.

    python bench/python/same_embeddings.py '{"a": "nfhm.parquet", "b": "baseline.parquet"}'

Prints {"rows", "same_paths", "same_labels", "max_abs_diff", "max_abs_value"} as JSON.
"""

import json
import sys

import numpy as np
import pyarrow.parquet as pq


def read(path: str) -> tuple[list[str], list[str], np.ndarray]:
    table = pq.read_table(path)
    vectors = table["embedding"].combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
    return table["path"].to_pylist(), table["label"].to_pylist(), vectors


def main() -> None:
    cfg = json.loads(sys.argv[1])
    (paths_a, labels_a, a), (paths_b, labels_b, b) = read(cfg["a"]), read(cfg["b"])
    same_shape = a.shape == b.shape
    print(
        json.dumps(
            {
                "rows": len(paths_a),
                "same_paths": paths_a == paths_b,
                "same_labels": labels_a == labels_b,
                "max_abs_diff": float(np.abs(a - b).max()) if same_shape else None,
                "max_abs_value": float(np.abs(a).max()),
            }
        )
    )


if __name__ == "__main__":
    main()
