"""The training session behind `train.start`, `train.steps`, `train.checkpoint` and `train.export`.

The orchestrator owns the schedule: each `train.steps` call brings the learning rate and
AdamW's beta1 of every step it asks for. Everything random is derived from the seed and
the step, so a session resumed from a checkpoint takes exactly the steps an uninterrupted
one would: the batch order is a permutation per epoch, each image's augmentation has its
own generator seeded by (seed, epoch, position), and the global RNG (drop-path) and the
head's sampling generator are saved in the checkpoint.

Under torchrun (distributed.py) every rank runs these methods. `batch_size` is the global batch:
each step's batch is drawn as above and rank r takes its r-th 1/W slice, so every image gets the
same augmentation whatever the world size. The backbone is wrapped in DDP with synchronised
BatchNorm; the head's classes are sharded (PartialFC_V2), and its class centres are drawn per
block of rows from seeded generators, so any world size starts from the same matrix. A
checkpoint holds what one process would hold (the whole class matrix and its AdamW moments,
gathered on rank 0), so it restores at any world size; the per-rank RNG states (drop-path) are
kept too and restored when the world size is the same.
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader

from . import data, distributed, plugins
from .atomic import atomic_path
from .embed import build_model
from .precision import Precision
from .threads import cores_shared
from .training import NonFiniteLoss, make_optimizer, train_step
from .transforms import Augmentation, TrainTransform
from .worker import Tables, Worker, method

SESSION = "train.session"
CHECKPOINT_FORMAT = "nfhm-train-checkpoint/2"
# Class centres are drawn in blocks of this many rows, each from its own seeded generator.
CENTRE_BLOCK = 4096
# Seed streams apart from the augmentation's (seed, epoch >= 0, position) seeds.
CENTRES_STREAM = -1
RANK_STREAM = -2
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
    decoded = DataLoader(
        data.ImageDataset(paths, np.asarray),
        batch_size=256,
        num_workers=workers,
        collate_fn=_as_list,
        worker_init_fn=data.die_with_worker,
    )
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
    model: torch.nn.Module  # the backbone itself: its state dict has UNICOM's key layout
    backbone: torch.nn.Module  # what the step calls: `model`, or DDP around it
    head: torch.nn.Module
    optimizer: torch.optim.Optimizer
    precision: Precision
    images: TrainImages
    device: torch.device
    batch_size: int  # global: over all ranks
    seed: int
    loader_workers: int
    steps_per_epoch: int
    num_classes: int
    embedding_size: int
    world: distributed.World = field(default_factory=distributed.World)
    step: int = 0
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    def epoch_batches(self, epoch: int, first_batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's part of the batches of `epoch` from `first_batch` on; the order depends
        on (seed, epoch) only, each image's augmentation on its position in the epoch."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
        per_rank = self.batch_size // self.world.size
        mine = range(self.world.rank * per_rank, (self.world.rank + 1) * per_rank)
        batches = [
            [(int(order[b * self.batch_size + j]), sample_seed(self.seed, epoch, b * self.batch_size + j)) for j in mine]
            for b in range(first_batch, self.steps_per_epoch)
        ]
        loader = DataLoader(
            self.images,
            batch_sampler=batches,
            num_workers=self.loader_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=data.die_with_worker,
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


def init_class_centres(head: torch.nn.Module, seed: int) -> None:
    """The head's class centres, normal(0, 0.01) as PartialFC_V2 draws them, made independent of
    the world size: rows come in blocks of CENTRE_BLOCK, each block from a generator seeded by
    (seed, block), and each rank draws only the blocks that overlap its own classes. Heads
    without PartialFC's shard attributes keep their own initialisation."""
    if not all(hasattr(head, name) for name in ("weight", "class_start", "num_local")):
        return
    start, stop = head.class_start, head.class_start + head.num_local
    with torch.no_grad():
        for block in range(start // CENTRE_BLOCK, (stop + CENTRE_BLOCK - 1) // CENTRE_BLOCK):
            first = block * CENTRE_BLOCK
            generator = torch.Generator().manual_seed(sample_seed(seed, CENTRES_STREAM, block))
            rows = torch.normal(0.0, 0.01, (CENTRE_BLOCK, head.weight.shape[1]), generator=generator)
            lo, hi = max(start, first), min(stop, first + CENTRE_BLOCK)
            head.weight[lo - start : hi - start] = rows[lo - first : hi - first]


def _make_head(params: dict[str, Any], embedding_size: int, world: distributed.World) -> torch.nn.Module:
    m = params["margin"]
    margin_loss = plugins.resolve(m["plugin"])(m["s"], m["m1"], m["m2"], m["m3"], m["interclass_filtering_threshold"])
    h = params["head"]
    head_cls = plugins.resolve(h["plugin"])
    options = {"sample_rate": h["sample_rate"], "sample_num_feat": h["sample_num_feat"]}
    # Under DDP, which averages the backbone's gradients, the head must scale the embedding
    # gradient by W. A plug-in without `ddp_backbone` is taken to do so itself, as UNICOM's does.
    if world.size > 1 and "ddp_backbone" in inspect.signature(head_cls).parameters:
        options["ddp_backbone"] = True
    head = head_cls(margin_loss, embedding_size, params["num_classes"], **options)
    init_class_centres(head, params["seed"])
    return head.to(world.device())


def _session(worker: Worker) -> Session:
    session = worker.state.get(SESSION)
    if session is None:
        raise RuntimeError("no training session: call train.start first")
    return session


@method("train.start", collective=True)
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
    world = distributed.world()
    if batch_size % world.size:
        raise ValueError(
            f"train.batch_size={batch_size} is the global batch and must split evenly over the {world.size} processes"
        )

    torch.manual_seed(params["seed"])
    device = world.device()
    model, _, embedding_size, image_size = build_model(params["model"], device)
    model.train()
    model, backbone = distributed.data_parallel(model)
    head = _make_head(params, embedding_size, world)
    # Drop-path draws from the global RNG: a stream of its own on every rank.
    torch.manual_seed(sample_seed(params["seed"], RANK_STREAM, world.rank))
    optimizer = make_optimizer(model, head, lr=1.0, head_lr_scale=params["head_lr_scale"], weight_decay=params["weight_decay"])
    precision = Precision.from_name(params["precision"], device, process_group=dist.group.WORLD if world.size > 1 else None)
    augmentation = Augmentation.from_params(params["augment"])
    images = TrainImages(paths, labels, TrainTransform(image_size, augmentation), decode_all(paths, params["loader_workers"]))
    session = Session(
        model=model,
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
        world=world,
    )
    if params["resume"]:
        restore(session, params["resume"])
    worker.state[SESSION] = session
    return {
        "steps_per_epoch": session.steps_per_epoch,
        "start_step": session.step,
        "embedding_size": embedding_size,
        "parameters": {
            "backbone": sum(p.numel() for p in model.parameters()),
            "head": _head_parameters(head, num_classes),
        },
        "device": str(device),
    }


def _head_parameters(head: torch.nn.Module, num_classes: int) -> int:
    """Over all ranks: this rank's parameters plus the class-centre rows the others hold."""
    local = sum(p.numel() for p in head.parameters())
    return local + (num_classes - head.num_local) * head.weight.shape[1] if hasattr(head, "num_local") else local


@method("train.steps", collective=True)
def steps(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    session = _session(worker)
    started = time.perf_counter()
    first_step = session.step
    losses: list[float] = []
    grad_norms: list[float] = []
    nonfinite: int | None = None
    with cores_shared(session.loader_workers):
        for lrs, betas in zip(params["lr"], params["beta1"]):
            for group, lr, beta1 in zip(session.optimizer.param_groups, lrs, betas):
                group["lr"] = lr
                group["betas"] = (beta1, group["betas"][1])
            images, labels = session.next_batch()
            try:
                stats = train_step(
                    session.backbone, session.head, images, labels, session.optimizer, session.precision, session.batch_size
                )
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
        state["cuda"] = torch.cuda.get_rng_state()  # this rank's GPU
    return state


def _class_rows(session: Session) -> slice | None:
    """The rows of the whole class-centre matrix that this rank's head holds (PartialFC_V2's
    shard); None for a head without shard attributes, which every rank holds whole."""
    head = session.head
    return slice(head.class_start, head.class_start + head.num_local) if hasattr(head, "num_local") else None


def _centres_index(session: Session) -> int:
    """The optimiser's index of the class-centre matrix (head.weight)."""
    params = [p for group in session.optimizer.param_groups for p in group["params"]]
    return next(i for i, p in enumerate(params) if p is session.head.weight)


def _whole_state(session: Session) -> dict[str, Any] | None:
    """On rank 0, what a one-process session would save (the class matrix and its AdamW moments
    gathered from every rank, every rank's RNG); None on the other ranks. Every rank must call it."""
    head = dict(session.head.state_dict())
    optimizer = session.optimizer.state_dict()
    if _class_rows(session) is not None:
        head["weight"] = distributed.gather_rows_to_leader(head["weight"])
        index = _centres_index(session)
        if index in optimizer["state"]:
            moments = {
                name: distributed.gather_rows_to_leader(value)
                if torch.is_tensor(value) and value.shape == session.head.weight.shape
                else value
                for name, value in optimizer["state"][index].items()
            }
            optimizer = {**optimizer, "state": {**optimizer["state"], index: moments}}
    rng = distributed.gather_to_leader(_rng_state())
    if not session.world.leader:
        return None
    generator = getattr(session.head, "generator", None)
    return {
        "format": CHECKPOINT_FORMAT,
        "step": session.step,
        "num_classes": session.num_classes,
        "embedding_size": session.embedding_size,
        "backbone": session.model.state_dict(),
        "head": head,
        "optimizer": optimizer,
        "scaler": session.precision.state_dict(),
        "rng": rng,  # one per rank
        "head_generator": generator().get_state() if callable(generator) else None,
    }


@method("train.checkpoint", collective=True)
def checkpoint(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    session = _session(worker)
    state = _whole_state(session)
    if state is None:
        return {}
    with atomic_path(params["path"]) as tmp:
        torch.save(state, tmp)
    return {"step": session.step, "bytes": os.path.getsize(params["path"])}


def restore(session: Session, path: str) -> None:
    """Everything `checkpoint` saved, checked against this session; errors name the file. Each
    rank takes its own rows of the class matrix, so any world size can continue the run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - truncated, not a checkpoint, or a refused pickle
        raise ValueError(f"cannot read the training checkpoint {path}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(
            f"{path} is not an nfhm training checkpoint of format {CHECKPOINT_FORMAT} (found {found}); "
            "start this training over with --restart"
        )
    for name in ("num_classes", "embedding_size"):
        if state[name] != getattr(session, name):
            raise ValueError(f"{path} was written with {name}={state[name]}, but this run has {getattr(session, name)}")
    session.model.load_state_dict(state["backbone"])
    head, optimizer = dict(state["head"]), state["optimizer"]
    rows = _class_rows(session)
    if rows is not None:
        whole = (session.num_classes, session.embedding_size)
        head["weight"] = head["weight"][rows]
        index = _centres_index(session)
        if index in optimizer["state"]:
            moments = {
                name: value[rows] if torch.is_tensor(value) and tuple(value.shape) == whole else value
                for name, value in optimizer["state"][index].items()
            }
            optimizer = {**optimizer, "state": {**optimizer["state"], index: moments}}
    session.head.load_state_dict(head)
    session.optimizer.load_state_dict(optimizer)
    session.precision.load_state_dict(state["scaler"])
    if len(state["rng"]) == session.world.size:
        rng = state["rng"][session.world.rank]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    else:
        # Another world size cannot continue the old drop-path streams: fresh ones per rank.
        torch.manual_seed(sample_seed(session.seed + state["step"], RANK_STREAM, session.world.rank))
    generator = getattr(session.head, "generator", None)
    if state["head_generator"] is not None and callable(generator):
        generator().set_state(state["head_generator"])
    session.step = state["step"]
    session.batches = None


@method("train.export", collective=True)
def export(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    """trained_model.pt in UNICOM's key layout and final_centroids.npy (the whole C x E class
    matrix, gathered from every rank), as the group saved them; ends the session."""
    session = _session(worker)
    worker.state.pop(SESSION, None)
    weight = session.head.weight
    centres = distributed.gather_rows_to_leader(weight) if _class_rows(session) is not None else weight.detach().cpu()
    if not session.world.leader:
        return {}
    with atomic_path(params["model_path"]) as tmp:
        torch.save({k: v.detach().cpu() for k, v in session.model.state_dict().items()}, tmp)
    centroids = centres.float().numpy()
    with atomic_path(params["centroids_path"]) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, centroids)
    return {"step": session.step, "classes": int(centroids.shape[0]), "embedding_size": int(centroids.shape[1])}
