# Reference clustering scores for test/clustering.test.ts: scikit-learn's
# NMI, AMI, ARI and expected mutual information, and numpy cluster sizes.
import json
import sys

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information

cfg = json.load(sys.stdin)


def agreement(case):
    t = np.array(case["true"], dtype=np.int64)
    p = np.array(case["pred"], dtype=np.int64)
    table = contingency_matrix(t, p, sparse=True)
    return {
        "nmi": normalized_mutual_info_score(t, p),
        "ami": adjusted_mutual_info_score(t, p),
        "ari": adjusted_rand_score(t, p),
        "emi": float(expected_mutual_information(table, len(t))),
    }


def sizes(case):
    labels = np.array(case["labels"], dtype=np.int64)
    counts = np.unique(labels, return_counts=True)[1]
    k = case["k"]
    all_sizes = np.concatenate([counts, np.zeros(k - len(counts), dtype=np.int64)])
    p = counts / counts.sum()
    return {
        "median": float(np.median(all_sizes)),
        "normalized_entropy": float(-(p * np.log(p)).sum() / np.log(k)) if k > 1 else 1.0,
        "max_over_mean": float(all_sizes.max() / all_sizes.mean()),
    }


print(json.dumps({
    "agreement": [agreement(c) for c in cfg["agreement"]],
    "sizes": [sizes(c) for c in cfg["sizes"]],
}))
