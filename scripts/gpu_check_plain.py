"""The training `nfhm train` did in scripts/gpu-check.sh, as a plain PyTorch loop, for its throughput.

    python scripts/gpu_check_plain.py RUN_DIR MODEL STEPS BATCH WORKERS LR

The same images and pseudo-labels (read from the nfhm run), augmentation, model, PartialFC_V2
head and margin loss, AdamW groups, OneCycle schedule, precision (bf16 autocast on CUDA, fp32 on
the CPU, as nfhm's "auto"), batch and loader processes; no orchestrator, no checkpoints, no
gradient-norm monitoring: one loop as UNICOM's retrieval.py writes it. Timed like nfhm's
train.steps: from the first batch's loading to the last step's end. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from nfhm.core.losses import CombinedMarginLoss
from nfhm.core.model import create_model
from nfhm.core.partial_fc import PartialFC_V2
from nfhm.core.table_files import read_table_file
from nfhm.core.transforms import AUGMENTATIONS, TrainTransform


class Images(Dataset):
    def __init__(self, paths: list[str], labels: np.ndarray, transform: TrainTransform) -> None:
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB")), int(self.labels[index])


def main(run_dir: str, model_name: str, steps: int, batch: int, workers: int, lr: float) -> None:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    images = read_table_file(os.path.join(run_dir, "images.arrow"))
    assigned = read_table_file(os.path.join(run_dir, "round-1", "cluster", "pseudo_labels.arrow"))
    paths = images["path"].to_pylist()
    ids = assigned["id"].to_numpy()
    labels = assigned["cluster"].to_numpy().astype(np.int64)
    classes = json.load(open(os.path.join(run_dir, "round-1", "cluster", "cluster.json")))["k"]

    torch.manual_seed(0)
    model = create_model(model_name).to(device).train()
    head = PartialFC_V2(CombinedMarginLoss(32, 1, 0.3, 0), model.embedding_size, classes).to(device)
    optimizer = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": lr}, {"params": head.parameters(), "lr": lr * 5}], weight_decay=0.0
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[lr, lr * 5], total_steps=steps, pct_start=0.1)
    dataset = Images([paths[i] for i in ids], labels, TrainTransform(model.image_size, AUGMENTATIONS["strong"]))
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers, pin_memory=cuda)

    losses = []
    started = time.perf_counter()
    for _, (x, y) in zip(range(steps), loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            embeddings = model(x)
        loss = head(embeddings.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(json.dumps({"steps": len(losses), "seconds": seconds, "images_per_s": len(losses) * batch / seconds, "first_loss": losses[0], "last_loss": losses[-1]}))


if __name__ == "__main__":
    run, name, steps, batch, workers, lr = sys.argv[1:7]
    main(run, name, int(steps), int(batch), int(workers), float(lr))
