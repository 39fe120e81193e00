# Reference retrieval metrics for test/retrieval.test.ts: builds labelled
# embeddings, finds exact neighbours (query excluded), and scores them with
# pytorch-metric-learning's AccuracyCalculator plus plain numpy (Recall@K,
# weighted k-NN). Input and output are JSON (see the test).
import json
import sys

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

cfg = json.load(sys.stdin)
RECALL_KS = cfg["recall_ks"]
KNN_KS = cfg["knn_ks"]
T = cfg["temperature"]
PML_METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def embed(labels, rng, dim, noise):
    _, cls = np.unique(labels, return_inverse=True)
    centers = rng.standard_normal((cls.max() + 1, dim))
    x = centers[cls] + noise * rng.standard_normal((len(labels), dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_neighbors(query, gallery, same, k, decimals):
    sims = query @ gallery.T
    if decimals is not None:
        # Rounding makes near-equal similarities exactly equal: real ties.
        sims = np.round(sims, decimals)
    if same:
        np.fill_diagonal(sims, -np.inf)
    # Highest similarity first; ties go to the lower gallery index.
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1).astype(np.float32)


class FixedKNN:
    """Hands PML precomputed neighbour lists instead of searching."""

    def __init__(self, idx, sims):
        self.idx, self.sims = idx, sims

    def __call__(self, query, k, reference, ref_includes_query):
        assert k <= self.idx.shape[1], (k, self.idx.shape)
        return torch.from_numpy(1 - self.sims[:, :k].astype(np.float32)), torch.from_numpy(self.idx[:, :k].copy())


def pml(query, qlab, gallery, glab, same, knn_func=None):
    calc = AccuracyCalculator(include=PML_METRICS, k="max_bin_count", device=torch.device("cpu"), knn_func=knn_func)
    if same:
        return calc.get_accuracy(query, qlab)
    return calc.get_accuracy(query, qlab, gallery, glab, ref_includes_query=False)


def scenario(s):
    rng = np.random.default_rng(s["seed"])
    glab = np.array(s["gallery_labels"], dtype=np.int64)
    same = s["same_set"]
    qlab = glab if same else np.array(s["query_labels"], dtype=np.int64)
    pool = embed(np.concatenate([glab, qlab]), rng, s["dim"], s["noise"])
    gallery = pool[: len(glab)]
    query = gallery if same else pool[len(glab):]

    counts = {int(v): int(c) for v, c in zip(*np.unique(glab, return_counts=True))}
    r = np.array([counts.get(int(v), 0) - (1 if same else 0) for v in qlab])
    available = len(glab) - (1 if same else 0)
    k = int(min(max(r.max(), max(RECALL_KS + KNN_KS)), available))
    idx, sims = exact_neighbors(query, gallery, same, k, s.get("decimals"))

    evaluated = r > 0
    labs = glab[idx]
    hit = labs == qlab[:, None]
    recall = {str(K): float(hit[evaluated, :K].any(axis=1).mean()) for K in RECALL_KS}

    knn = {}
    classes = np.unique(glab)
    for kk in KNN_KS:
        w = np.exp(sims[:, :kk].astype(np.float64) / T)
        onehot = labs[:, :kk, None] == classes[None, None, :]
        scores = (onehot * w[:, :, None]).sum(axis=1)
        knn[str(kk)] = float((classes[scores.argmax(axis=1)] == qlab)[evaluated].mean())

    q32, g32 = query.astype(np.float32), gallery.astype(np.float32)
    out = {
        "k": k,
        "neighbors": idx.ravel().tolist(),
        "similarities": sims.ravel().tolist(),
        "query_labels": qlab.tolist(),
        "evaluated": int(evaluated.sum()),
        "recall": recall,
        "knn": knn,
        "pml_fixed": pml(q32, qlab, g32, glab, same, FixedKNN(idx, sims)),
    }
    if s.get("pml_search", False):
        out["pml_search"] = pml(q32, qlab, g32, glab, same)
    return out


print(json.dumps([scenario(s) for s in cfg["scenarios"]]))
