"""faiss k-means called directly: the baseline of bench/kmeans.ts.

    python bench/python/kmeans_baseline.py '{"shards": [...], "k": 3000, "niter": 20, ...}'

The embeddings are read from the same shards before the clock starts; timed are the L2
normalisation, faiss.Kmeans(...).train with the stage's settings, and the assignment of every
point to its nearest centroid. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

import faiss
import numpy as np

from nfhm.core.shards import read_embeddings


def main() -> None:
    cfg = json.loads(sys.argv[1])
    _, vectors = read_embeddings(cfg["shards"])

    started = time.perf_counter()
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    kmeans = faiss.Kmeans(
        vectors.shape[1],
        cfg["k"],
        niter=cfg["niter"],
        nredo=cfg["nredo"],
        seed=cfg["seed"],
        spherical=True,
        max_points_per_centroid=cfg["max_points_per_centroid"],
        min_points_per_centroid=cfg["min_points_per_centroid"],
    )
    kmeans.train(vectors)
    _, assignment = kmeans.index.search(vectors, 1)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "objective": float(kmeans.obj[-1]), "clusters": int(len(np.unique(assignment)))}))


if __name__ == "__main__":
    main()
