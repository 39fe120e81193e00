"""The versions BENCHMARKS.md names, as one JSON line."""

import json
import sys

import faiss
import numpy
import pyarrow
import pytorch_metric_learning
import torch

print(
    json.dumps(
        {
            "Python": sys.version.split()[0],
            "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
            "faiss": faiss.__version__,
            "pyarrow": pyarrow.__version__,
            "numpy": numpy.__version__,
            "pytorch-metric-learning": pytorch_metric_learning.__version__,
        }
    )
)
