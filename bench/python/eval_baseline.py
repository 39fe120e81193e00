"""pytorch-metric-learning's AccuracyCalculator: the baseline of bench/eval.ts.

    python bench/python/eval_baseline.py '{"shards": [...], "labels": "labels.arrow"}'

The embeddings and labels are read before the clock starts; timed are the L2 normalisation
(nfhm's search works on cosine similarity) and get_accuracy with k="max_bin_count" (the least
k that makes R-Precision and MAP@R exact), the query set being its own reference. Prints one
JSON line with the time and the three metrics.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import pyarrow.ipc as ipc
import torch
from pytorch_metric_learning.utils import common_functions
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from nfhm.core.shards import read_embeddings

METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def main() -> None:
    cfg = json.loads(sys.argv[1])
    common_functions.LOGGER.setLevel(logging.WARNING)
    ids, vectors = read_embeddings(cfg["shards"])
    with open(cfg["labels"], "rb") as f:
        table = ipc.open_file(f).read_all()
    label_of = dict(zip(table["id"].to_pylist(), table["label"].to_pylist()))
    labels = torch.tensor([label_of[int(i)] for i in ids])
    embeddings = torch.from_numpy(vectors)

    started = time.perf_counter()
    calculator = AccuracyCalculator(include=METRICS, k="max_bin_count", device=torch.device("cpu"))
    accuracy = calculator.get_accuracy(torch.nn.functional.normalize(embeddings), labels)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, **{name: float(accuracy[name]) for name in METRICS}}))


if __name__ == "__main__":
    main()
