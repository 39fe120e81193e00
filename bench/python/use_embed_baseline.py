"""A plain PyTorch program doing `nfhm embed <folder> --model <trained_model.pt> --out <file.parquet>`'s
job end to end in one process: the baseline of bench/use-embed.ts.

    python bench/python/use_embed_baseline.py '{"folder": "...", "model": ".../trained_model.pt",
        "name": "efficientnet-lite0", "image_size": 64, "embedding_size": 256,
        "batch_size": 256, "loader_workers": 1, "out": "....parquet"}'

Imports torch, builds the model and loads the .pt (nfhm.core.model.load, as embed_baseline.py
does), walks the class-folder tree (class folders sorted, files sorted in each), embeds with a
DataLoader of the same batch size and workers under inference_mode, and writes path, label and
the embedding (fixed_size_list<float32>) as Parquet with pyarrow. bench/use-embed.ts times the
whole process; the phases it prints (one JSON line) are measured from the first line here.
"""

import time

started = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from embed_baseline import Images  # noqa: E402  (this folder is on sys.path: the script's own)
from torch.utils.data import DataLoader  # noqa: E402

from nfhm.core.model import load  # noqa: E402
from nfhm.core.threads import cores_shared  # noqa: E402

IMAGES = (".png", ".jpg", ".jpeg")


def class_tree(folder: str) -> tuple[list[str], list[str]]:
    """(paths, labels): every image of every class folder, in sorted order."""
    root = os.path.abspath(folder)
    paths, labels = [], []
    for label in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
        for name in sorted(os.listdir(os.path.join(root, label))):
            if name.lower().endswith(IMAGES):
                paths.append(os.path.join(root, label, name))
                labels.append(label)
    return paths, labels


def main() -> None:
    cfg = json.loads(sys.argv[1])
    imported = time.perf_counter()
    model, transform = load(cfg["name"], cfg["model"], image_size=cfg["image_size"], embedding_size=cfg["embedding_size"])
    loaded = time.perf_counter()
    paths, labels = class_tree(cfg["folder"])
    loader = DataLoader(Images(paths, transform), batch_size=cfg["batch_size"], num_workers=cfg["loader_workers"])
    # cores_shared: the thread count nfhm uses, so that only the program around the loop differs
    with torch.inference_mode(), cores_shared(cfg["loader_workers"]):
        embeddings = torch.cat([model(batch) for batch in loader]).numpy().astype(np.float32, copy=False)
    embedded = time.perf_counter()
    flat = pa.array(embeddings.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "path": pa.array(paths, type=pa.string()),
            "label": pa.array(labels, type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, embeddings.shape[1]),
        }
    )
    pq.write_table(table, cfg["out"])
    done = time.perf_counter()
    phases = {"import_s": imported - started, "model_s": loaded - imported, "embed_s": embedded - loaded, "write_s": done - embedded}
    print(json.dumps({**phases, "rows": len(paths)}))


if __name__ == "__main__":
    main()
