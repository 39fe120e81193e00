"""A 2-D map of embeddings for the report: scikit-learn's t-SNE of a seeded sample of them.

The vectors are L2-normalised first, so the map keeps cosine neighbourhoods, the ones retrieval
ranks by. t-SNE's time grows with the points, hence the sample, and with its iterations: on the
demo's test embeddings (2,000 of them, 64 dimensions; 2 cores, one busy with other work) 500
iterations took 4.4 s and scikit-learn's default of 1,000 about twice that, for the same
trustworthiness (0.9955 over 10 neighbours). Its coordinates are the same with one thread or two.
"""

from __future__ import annotations

import numpy as np

from .shards import l2_normalize

ITERATIONS = 500
PERPLEXITY = 30.0


def sample_rows(n: int, points: int, seed: int) -> np.ndarray:
    """At most `points` of the row indices 0..n-1, drawn without replacement, ascending."""
    if n <= points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=points, replace=False))


def tsne_map(vectors: np.ndarray, seed: int) -> np.ndarray:
    """(n, 2) float32 map coordinates of the rows of `vectors`."""
    n = len(vectors)
    if n < 2:
        raise ValueError(f"a map needs at least 2 embeddings, got {n}")
    # t-SNE needs fewer neighbours per point than there are points.
    perplexity = min(PERPLEXITY, (n - 1) / 3)
    # Imported here: scikit-learn takes ~1.4 s to import, and every worker start would pay it.
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", max_iter=ITERATIONS, random_state=seed)
    # One thread: with its OpenMP threads on 2 busy cores, Barnes-Hut t-SNE of 200 points took
    # 29 s instead of 0.8 s (measured); at these sizes threads gain little even when idle.
    with threadpool_limits(1):
        return tsne.fit_transform(l2_normalize(vectors)).astype(np.float32)
