"""Embedding image files with a loaded model: batches from a DataLoader, vectors in file order,
and the reason for every file that could not be read."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from .images import ImageDataset, collate_images
from .lifetime import die_with_this_process
from .model_spec import LoadedModel
from .precision import Precision
from .threads import cores_shared


def embed_images(
    loaded: LoadedModel, paths: list[str], batch_size: int, loader_workers: int, precision: str
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(vectors (n, E) float32, readable (n,) bool, reasons by index) for the images at `paths`."""
    return embed_dataset(loaded, ImageDataset(paths, loaded.transform), batch_size, loader_workers, precision)


def embed_dataset(
    loaded: LoadedModel, images: ImageDataset, batch_size: int, loader_workers: int, precision: str
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """`embed_images` over any ImageDataset (nfhm.api's also takes PIL images)."""
    policy = Precision.from_name(precision, loaded.device)
    cuda = loaded.device.type == "cuda"
    batches = DataLoader(
        images,
        batch_size=batch_size,
        num_workers=loader_workers,
        pin_memory=cuda,
        collate_fn=collate_images,
        worker_init_fn=die_with_this_process(),
    )
    vectors = np.zeros((len(images), loaded.embedding_size), np.float32)
    good = np.zeros(len(images), bool)
    reasons: dict[int, str] = {}
    with torch.inference_mode(), cores_shared(loader_workers):
        for batch in batches:
            reasons.update(batch.bad)
            if batch.images is None:
                continue
            with policy.autocast():
                out = loaded.model(batch.images.to(loaded.device, non_blocking=cuda))
            vectors[batch.indices] = out.float().cpu().numpy()
            good[batch.indices] = True
    return vectors, good, reasons
