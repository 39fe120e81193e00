"""The group's training loop as a plain PyTorch script: the baseline of bench/train.ts.

    python bench/python/train_baseline.py '{"images": "train.arrow", "steps": 150, ...}'

Same model config (nfhm.core.model), PartialFC_V2 head and CombinedMarginLoss, AdamW groups, torch's
OneCycleLR stepped every iteration, batch, augmentation, torch threads and DataLoader workers as
the nfhm run it is compared with. As in the group's loop, the DataLoader decodes every PNG each
time it is drawn; with "decode_once" it decodes them all into memory first, as nfhm's
train.start does (nfhm.core.train_images.decode_all). Prints one JSON line: the wall time of
the step loop (first batch requested to last optimizer step) and of the setup, and what the
backbone gradient norm that nfhm computes every step would cost (timed apart, after the loop).
"""

from __future__ import annotations

import json
import sys
import time

import pyarrow.ipc as ipc
import torch
from PIL import Image
from torch.utils.data import DataLoader

from nfhm.core.images import open_rgb
from nfhm.core.losses import CombinedMarginLoss
from nfhm.core.model import load
from nfhm.core.partial_fc import PartialFC_V2
from nfhm.core.threads import cores_shared
from nfhm.core.train_images import decode_all
from nfhm.core.train_step import make_optimizer, make_scheduler
from nfhm.core.transforms import Augmentation, TrainTransform


NORM_REPEATS = 20


class Images:
    def __init__(self, paths: list[str], labels: list[int], transform: TrainTransform, decoded: list | None) -> None:
        self.paths, self.labels, self.transform, self.decoded = paths, labels, transform, decoded

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.decoded[i]) if self.decoded is not None else open_rgb(self.paths[i])
        return self.transform(image), self.labels[i]


def grad_norm_seconds(backbone: torch.nn.Module) -> float:
    """nfhm.core.train_step.train_step's backbone gradient norm, per evaluation."""
    started = time.perf_counter()
    for _ in range(NORM_REPEATS):
        grads = [p.grad for p in backbone.parameters() if p.grad is not None]
        torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item()
    return (time.perf_counter() - started) / NORM_REPEATS


def main() -> None:
    cfg = json.loads(sys.argv[1])
    started = time.perf_counter()
    with open(cfg["images"], "rb") as f:
        table = ipc.open_file(f).read_all()
    paths, labels = table["path"].to_pylist(), table["label"].to_pylist()
    torch.manual_seed(cfg["seed"])
    backbone, _ = load(cfg["model"])
    backbone.train()
    m = cfg["margin"]
    head = PartialFC_V2(CombinedMarginLoss(m["s"], m["m1"], m["m2"], m["m3"]), backbone.embedding_size, cfg["classes"])
    optimizer = make_optimizer(backbone, head, cfg["lr"], cfg["head_lr_scale"], cfg["weight_decay"])
    steps = cfg["steps"]
    scheduler = make_scheduler(optimizer, steps, cfg["pct_start"])
    augmentation = Augmentation.from_params(cfg["augment"])
    decoded = decode_all(paths, cfg["loader_workers"]) if cfg["decode_once"] else None
    loader = DataLoader(
        Images(paths, labels, TrainTransform(backbone.image_size, augmentation), decoded),
        batch_size=cfg["batch_size"],
        shuffle=True,
        drop_last=True,
        num_workers=cfg["loader_workers"],
    )
    setup = time.perf_counter() - started

    started = time.perf_counter()
    done = 0
    with cores_shared(cfg["loader_workers"]):  # the thread count nfhm uses, so that only the loop differs
        for images, targets in loader:  # one epoch: steps = len(paths) // batch_size
            optimizer.zero_grad(set_to_none=True)
            loss = head(backbone(images).float(), targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            done += 1
    loop = time.perf_counter() - started
    if done != steps:
        raise SystemExit(f"ran {done} steps, expected {steps}")
    print(json.dumps({"setup_s": setup, "loop_s": loop, "grad_norm_s": grad_norm_seconds(backbone)}))


if __name__ == "__main__":
    main()
