"""The training session behind `train.start`, `train.steps`, `train.checkpoint` and `train.export`.

The orchestrator owns the schedule: each `train.steps` call brings the learning rate and
AdamW's beta1 of every step it asks for. Everything random is derived from the seed and
the step, so a session resumed from a checkpoint takes exactly the steps an uninterrupted
one would: the batch order is a permutation per epoch, each image's augmentation has its
own generator seeded by (seed, epoch, position), and the global RNG (drop-path) and the
head's sampling generator are saved in the checkpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from . import data, plugins
from .atomic import atomic_path
from .embed import build_model
from .precision import Precision
from .training import NonFiniteLoss, make_optimizer, train_step
from .transforms import Augmentation, TrainTransform
from .worker import Tables, Worker, method

SESSION = "train.session"
CHECKPOINT_FORMAT = "nfhm-train-checkpoint/1"
# Decode every training image once when they fit in this much memory (small images):
# decoding them again each epoch would cost more than the training step on a small CPU model.
DECODED_CACHE_BYTES = 2 << 30


class TrainImages:
    """Item (index, seed) -> (augmented tensor, label). Decoded images are cached when small."""

    def __init__(self, paths: list[str], labels: np.ndarray, transform: TrainTransform, cache: list[np.ndarray] | None):
        self.paths = paths
        self.labels = labels
        self.transform = transform
        self.cache = cache

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> Image.Image:
        if self.cache is not None:
            return Image.fromarray(self.cache[index])
        try:
            return data.open_rgb(self.paths[index])
        except data.UnreadableImage as e:
            raise ValueError(f"training image {self.paths[index]}: {e}") from None

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        generator = torch.Generator().manual_seed(seed)
        return self.transform(self.image(index), generator), int(self.labels[index])


def decode_all(paths: list[str], workers: int) -> list[np.ndarray] | None:
    """Every image decoded to uint8 RGB, or None when they would not fit the cache."""
    with data.open_rgb(paths[0]) as first:
        if first.width * first.height * 3 * len(paths) > DECODED_CACHE_BYTES:
            return None
    decoded = DataLoader(data.ImageDataset(paths, np.asarray), batch_size=256, num_workers=workers, collate_fn=_as_list)
    images: list[np.ndarray] = []
    for batch in decoded:
        for index, item in batch:
            if isinstance(item, data.BadImage):
                raise ValueError(f"training image {paths[index]}: {item.reason}")
            images.append(item)
    return images


def _as_list(items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    return items


@dataclass
class Session:
    backbone: torch.nn.Module
    head: torch.nn.Module
    optimizer: torch.optim.Optimizer
    precision: Precision
    images: TrainImages
    device: torch.device
    batch_size: int
    seed: int
    loader_workers: int
    steps_per_epoch: int
    num_classes: int
    embedding_size: int
    step: int = 0
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    def epoch_batches(self, epoch: int, first_batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of `epoch` from `first_batch` on; the order depends on (seed, epoch) only."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
        batches = [
            [(int(order[b * self.batch_size + j]), sample_seed(self.seed, epoch, b * self.batch_size + j)) for j in range(self.batch_size)]
            for b in range(first_batch, self.steps_per_epoch)
        ]
        loader = DataLoader(
            self.images,
            batch_sampler=batches,
            num_workers=self.loader_workers,
            pin_memory=self.device.type == "cuda",
        )
        return iter(loader)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, within = divmod(self.step, self.steps_per_epoch)
        if within == 0 or self.batches is None:
            self.batches = self.epoch_batches(epoch, within)
        images, labels = next(self.batches)
        return images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A distinct seed for every (run seed, epoch, position in the epoch)."""
    return ((seed * 100_003 + epoch) << 32 | position) & (2**63 - 1)


def _session(worker: Worker) -> Session:
    session = worker.state.get(SESSION)
    if session is None:
        raise RuntimeError("no training session: call train.start first")
    return session


@method("train.start")
def start(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    worker.state.pop(SESSION, None)
    table = tables.get("train")
    if table is None or not {"path", "label"} <= set(table.schema.names):
        raise ValueError("train.start needs a table `train` with columns path and label")
    paths = table["path"].to_pylist()
    labels = table["label"].to_numpy().astype(np.int64)
    num_classes = params["num_classes"]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"pseudo-labels must lie in [0, {num_classes}); got [{labels.min()}, {labels.max()}]")
    batch_size = params["batch_size"]
    if len(paths) < batch_size:
        raise ValueError(f"{len(paths)} training images cannot fill one batch of {batch_size}; lower train.batch_size")

    torch.manual_seed(params["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone, _, embedding_size, image_size = build_model(params["model"], device)
    backbone.train()
    m = params["margin"]
    margin_loss = plugins.resolve(m["plugin"])(m["s"], m["m1"], m["m2"], m["m3"], m["interclass_filtering_threshold"])
    h = params["head"]
    head = plugins.resolve(h["plugin"])(
        margin_loss, embedding_size, num_classes, sample_rate=h["sample_rate"], sample_num_feat=h["sample_num_feat"]
    ).to(device)
    optimizer = make_optimizer(backbone, head, lr=1.0, head_lr_scale=params["head_lr_scale"], weight_decay=params["weight_decay"])
    precision = Precision.from_name(params["precision"], device)
    a = params["augment"]
    augmentation = Augmentation(
        crop_scale=tuple(a["crop_scale"]),
        hflip_prob=a["hflip_prob"],
        randaug_ops=a["randaug_ops"],
        randaug_magnitude=a["randaug_magnitude"],
        erasing_prob=a["erasing_prob"],
    )
    images = TrainImages(paths, labels, TrainTransform(image_size, augmentation), decode_all(paths, params["loader_workers"]))
    session = Session(
        backbone=backbone,
        head=head,
        optimizer=optimizer,
        precision=precision,
        images=images,
        device=device,
        batch_size=batch_size,
        seed=params["seed"],
        loader_workers=params["loader_workers"],
        steps_per_epoch=len(paths) // batch_size,
        num_classes=num_classes,
        embedding_size=embedding_size,
    )
    if params["resume"]:
        restore(session, params["resume"])
    worker.state[SESSION] = session
    return {
        "steps_per_epoch": session.steps_per_epoch,
        "start_step": session.step,
        "embedding_size": embedding_size,
        "parameters": {
            "backbone": sum(p.numel() for p in backbone.parameters()),
            "head": sum(p.numel() for p in head.parameters()),
        },
        "device": str(device),
    }


@method("train.steps")
def steps(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    session = _session(worker)
    started = time.perf_counter()
    first_step = session.step
    losses: list[float] = []
    grad_norms: list[float] = []
    nonfinite: int | None = None
    for lrs, betas in zip(params["lr"], params["beta1"]):
        for group, lr, beta1 in zip(session.optimizer.param_groups, lrs, betas):
            group["lr"] = lr
            group["betas"] = (beta1, group["betas"][1])
        images, labels = session.next_batch()
        try:
            stats = train_step(session.backbone, session.head, images, labels, session.optimizer, session.precision)
        except NonFiniteLoss:
            nonfinite = session.step
            break
        losses.append(stats.loss)
        grad_norms.append(stats.grad_norm)
        session.step += 1
    if session.device.type == "cuda":
        torch.cuda.synchronize()
    return {
        "first_step": first_step,
        "loss": losses,
        "grad_norm": grad_norms,
        "grad_scale": session.precision.scaler.get_scale() if session.precision.scaler.is_enabled() else None,
        "nonfinite_step": nonfinite,
        "seconds": time.perf_counter() - started,
        "images": len(losses) * session.batch_size,
    }


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


@method("train.checkpoint")
def checkpoint(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    session = _session(worker)
    generator = getattr(session.head, "generator", None)
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": session.step,
        "num_classes": session.num_classes,
        "embedding_size": session.embedding_size,
        "backbone": session.backbone.state_dict(),
        "head": session.head.state_dict(),
        "optimizer": session.optimizer.state_dict(),
        "scaler": session.precision.state_dict(),
        "rng": _rng_state(),
        "head_generator": generator().get_state() if callable(generator) else None,
    }
    with atomic_path(params["path"]) as tmp:
        torch.save(state, tmp)
    return {"step": session.step, "bytes": os.path.getsize(params["path"])}


def restore(session: Session, path: str) -> None:
    """Everything `checkpoint` saved, checked against this session; errors name the file."""
    try:
        state = torch.load(path, map_location=session.device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, not a checkpoint, or a refused pickle
        raise ValueError(f"cannot read the training checkpoint {path}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an nfhm training checkpoint ({CHECKPOINT_FORMAT})")
    for field in ("num_classes", "embedding_size"):
        if state[field] != getattr(session, field):
            raise ValueError(f"{path} was written with {field}={state[field]}, but this run has {getattr(session, field)}")
    session.backbone.load_state_dict(state["backbone"])
    session.head.load_state_dict(state["head"])
    session.optimizer.load_state_dict(state["optimizer"])
    session.precision.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    generator = getattr(session.head, "generator", None)
    if state["head_generator"] is not None and callable(generator):
        generator().set_state(state["head_generator"].cpu())
    session.step = state["step"]
    session.batches = None


@method("train.export")
def export(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    """trained_model.pt in UNICOM's key layout and final_centroids.npy, as the group saved them."""
    session = _session(worker)
    with atomic_path(params["model_path"]) as tmp:
        torch.save({k: v.detach().cpu() for k, v in session.backbone.state_dict().items()}, tmp)
    centroids = session.head.weight.detach().float().cpu().numpy()
    with atomic_path(params["centroids_path"]) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, centroids)
    worker.state.pop(SESSION, None)
    return {"step": session.step, "classes": int(centroids.shape[0]), "embedding_size": int(centroids.shape[1])}
