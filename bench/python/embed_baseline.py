"""A plain PyTorch embedding loop: the baseline of bench/embed.ts.

    python bench/python/embed_baseline.py '{"images": "test.arrow", "model": "ViT-T/4@28px", ...}'

The model and its eval transform come from nfhm.core.model.load, as in the nfhm run; a DataLoader
with the same batch size and workers decodes the PNGs, the model runs under inference_mode,
and the embeddings are saved with np.save. Prints one JSON line: the wall time from the
DataLoader's creation to the saved file (the model is loaded before the clock starts).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pyarrow.ipc as ipc
import torch
from PIL import Image
from torch.utils.data import DataLoader

from nfhm.core.model import load
from nfhm.core.threads import cores_shared


class Images:
    def __init__(self, paths: list[str], transform) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    with open(cfg["images"], "rb") as f:
        paths = ipc.open_file(f).read_all()["path"].to_pylist()
    model, transform = load(
        cfg["model"], cfg.get("weights"), image_size=cfg.get("image_size"), embedding_size=cfg.get("embedding_size")
    )

    started = time.perf_counter()
    loader = DataLoader(Images(paths, transform), batch_size=cfg["batch_size"], num_workers=cfg["loader_workers"])
    # cores_shared: the thread count nfhm uses, so that only the loop differs
    with torch.inference_mode(), cores_shared(cfg["loader_workers"]):
        embeddings = torch.cat([model(batch) for batch in loader]).numpy()
    np.save(cfg["out"], embeddings)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(embeddings)}))


if __name__ == "__main__":
    main()
