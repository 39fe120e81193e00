"""`cluster.kmeans`: faiss k-means over embedding shards; the cluster ids become pseudo-labels.

UNICOM clusters L2-normalised CLIP features with spherical k-means (centroids re-normalised
after every iteration). Every faiss setting that shapes the pseudo-labels is passed through,
and the two conditions under which faiss quietly changes what it does (too few points per
centroid; subsampling to max_points_per_centroid * K) are reported in `warnings`, since
faiss itself only prints them to stderr.
"""

from __future__ import annotations

import os
import time

import faiss
import numpy as np
import pyarrow as pa

from ..core.atomic import atomic_path
from ..core.shards import l2_normalize, read_embeddings
from ..core.table_files import write_table_file
from .handler import Handler, Result, Tables
from .state import WorkerState

INT32 = np.iinfo(np.int32)


def _use_gpu(requested: bool | None) -> bool:
    available = faiss.get_num_gpus() > 0
    if requested and not available:
        raise ValueError("gpu=true, but faiss sees no GPU (is faiss-cpu installed instead of faiss-gpu?)")
    return available if requested is None else requested


def training_warnings(n: int, k: int, min_points: int, max_points: int) -> list[str]:
    """What faiss would print to stderr for these sizes, in words a user can act on."""
    out = []
    if n < k * min_points:
        out.append(
            f"only {n} images for K={k} clusters ({n / k:.1f} per cluster); faiss wants at least "
            f"{min_points} per cluster ({k * min_points} images), so the centroids are noisy. "
            f"That can still retrieve best (nfhm sweep measures it); K <= {max(1, n // min_points)} meets faiss's rule"
        )
    if n > k * max_points:
        out.append(
            f"k-means trained on a random sample of {k * max_points} of the {n} images "
            f"(max_points_per_centroid={max_points} x K={k}); every image is still assigned to its nearest centroid"
        )
    return out


def _write_outputs(out_dir: str, assignments: pa.Table, centroids: np.ndarray) -> None:
    os.makedirs(out_dir, exist_ok=True)
    write_table_file(os.path.join(out_dir, "pseudo_labels.arrow"), assignments)
    with atomic_path(os.path.join(out_dir, "centroids.npy")) as tmp, open(tmp, "wb") as f:
        np.save(f, centroids)  # a file object: np.save would append ".npy" to the temporary name
    flat = pa.array(centroids.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "centroid": pa.array(np.arange(len(centroids), dtype=np.int32)),
            "vector": pa.FixedSizeListArray.from_arrays(flat, centroids.shape[1]),
        }
    )
    write_table_file(os.path.join(out_dir, "centroids.arrow"), table)


def kmeans(
    state: WorkerState,
    tables: Tables,
    *,
    shards: list[str],
    k: int,
    spherical: bool,
    niter: int,
    nredo: int,
    seed: int,
    max_points_per_centroid: int,
    min_points_per_centroid: int,
    gpu: bool | None,
    out_dir: str | None,
) -> tuple[Result, Tables]:
    started = time.perf_counter()
    ids, vectors = read_embeddings(shards)
    n, dim = vectors.shape
    if k > n:
        raise ValueError(f"K={k} is larger than the number of images (n={n}); choose K <= {n}")
    faiss_ints = {
        "niter": niter,
        "nredo": nredo,
        "seed": seed,
        "max_points_per_centroid": max_points_per_centroid,
        "min_points_per_centroid": min_points_per_centroid,
    }
    for name, value in faiss_ints.items():
        if not INT32.min <= value <= INT32.max:
            raise ValueError(f"{name}={value} does not fit faiss's 32-bit integer ({INT32.min}..{INT32.max})")
    if spherical:
        vectors = l2_normalize(vectors)
    use_gpu = _use_gpu(gpu)
    min_points, max_points = min_points_per_centroid, max_points_per_centroid

    km = faiss.Kmeans(
        dim,
        k,
        niter=niter,
        nredo=nredo,
        seed=seed,
        spherical=spherical,
        max_points_per_centroid=max_points,
        min_points_per_centroid=min_points,
        gpu=use_gpu,
        verbose=False,
    )
    km.train(vectors)
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    # After training km.index holds the centroids: inner products for spherical k-means, squared L2 otherwise.
    scores, nearest = km.index.search(vectors, 1)
    nearest, scores = nearest[:, 0], scores[:, 0]
    if spherical:
        squared = (vectors**2).sum(1) + (centroids**2).sum(1)[nearest] - 2 * scores
        distance = np.maximum(squared, 0).astype(np.float32)
    else:
        distance = scores

    assignments = pa.table(
        {
            "id": pa.array(ids, type=pa.int32()),
            "cluster": pa.array(nearest.astype(np.int32), type=pa.int32()),
            "distance": pa.array(distance, type=pa.float32()),
        }
    )
    if out_dir:
        _write_outputs(out_dir, assignments, centroids)
    result = {
        "n": n,
        "dim": dim,
        "k": k,
        # faiss keeps the best of nredo runs and its statistics, so obj[-1] is the kept run's
        # final value: the sum of squared distances, or of similarities when spherical.
        "objective": float(km.obj[-1]),
        "seconds": time.perf_counter() - started,
        "gpu": use_gpu,
        "trained_on": min(n, k * max_points),
        "warnings": training_warnings(n, k, min_points, max_points),
    }
    return result, {"assignments": assignments}


METHODS: dict[str, Handler] = {"cluster.kmeans": kmeans}
