"""A training session: the backbone, the head and its margin loss, the optimiser and the data,
stepped on request (nfhm/methods/train.py serves it as `train.start`, `train.steps`,
`train.checkpoint` and `train.export`).

The orchestrator owns the schedule: each `train.steps` call brings the learning rate and
AdamW's beta1 of every step it asks for. Everything random is derived from the seed and
the step, so a session resumed from a checkpoint takes exactly the steps an uninterrupted
one would: the batch order is a permutation per epoch, each image's augmentation has its
own generator seeded by (seed, epoch, position), and the global RNG (drop-path) and the
head's sampling generator are saved in the checkpoint.

Under torchrun (nfhm/core/world.py) every rank holds a session. `batch_size` is the global batch:
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import plugins
from .freeze import FrozenCache
from .lifetime import die_with_this_process
from .precision import Precision
from .train_images import TrainImages
from .world import World

# Class centres are drawn in blocks of this many rows, each from its own seeded generator.
CENTRE_BLOCK = 4096
# Seed streams apart from the augmentation's (seed, epoch >= 0, position) seeds.
CENTRES_STREAM = -1
RANK_STREAM = -2


class HeadSpec(TypedDict):
    plugin: str  # "module:attribute" of the head class (nfhm/core/plugins.py)
    sample_rate: float
    sample_num_feat: int | None


class MarginSpec(TypedDict):
    plugin: str  # "module:attribute" of the margin loss class
    s: float
    m1: float
    m2: float
    m3: float
    interclass_filtering_threshold: float


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
    world: World = field(default_factory=World)
    step: int = 0
    batches: Iterator[Any] | None = None  # of epoch_batches, or cached_epoch_batches with a cache
    # train.freeze > 0: the model's frozen part (backbone is then its trained part) and, when
    # that part's output is cached, the cache (nfhm/core/freeze.py)
    frozen: Callable[[torch.Tensor], torch.Tensor] | None = None
    cache: FrozenCache | None = None

    def batch_items(self, epoch: int, first_batch: int) -> list[list[tuple[int, int]]]:
        """This rank's (image index, augmentation seed) items of the batches of `epoch` from
        `first_batch` on; the order depends on (seed, epoch) only, each image's augmentation on
        its position in the epoch."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
        per_rank = self.batch_size // self.world.size
        mine = range(self.world.rank * per_rank, (self.world.rank + 1) * per_rank)
        return [
            [(int(order[b * self.batch_size + j]), sample_seed(self.seed, epoch, b * self.batch_size + j)) for j in mine]
            for b in range(first_batch, self.steps_per_epoch)
        ]

    def _loader(self, batches: list[list[tuple[int, int]]]) -> DataLoader:
        return DataLoader(
            self.images,
            batch_sampler=batches,
            num_workers=self.loader_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=die_with_this_process(),
        )

    def epoch_batches(self, epoch: int, first_batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's part of the batches of `epoch` from `first_batch` on: (images, labels)."""
        return iter(self._loader(self.batch_items(epoch, first_batch)))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, within = divmod(self.step, self.steps_per_epoch)
        if within == 0 or self.batches is None:
            self.batches = self.epoch_batches(epoch, within)
        images, labels = next(self.batches)
        return images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def cached_epoch_batches(
        self, epoch: int, first_batch: int
    ) -> Iterator[tuple[torch.Tensor | None, torch.Tensor, list[int]]]:
        """As `epoch_batches`, plus each batch's image indices; the images are loaded only for
        batches with an image whose frozen output is not cached yet (None otherwise)."""
        assert self.cache is not None
        items = self.batch_items(epoch, first_batch)
        indices = [[index for index, _ in batch] for batch in items]
        cached = [self.cache.has(batch) for batch in indices]
        to_load = [batch for batch, done in zip(items, cached) if not done]
        loaded = iter(self._loader(to_load)) if to_load else iter(())
        for batch, done in zip(indices, cached):
            if done:
                yield None, torch.as_tensor(self.images.labels[batch]), batch
            else:
                images, labels = next(loaded)
                yield images, labels, batch

    def next_inputs(self) -> tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor] | None]:
        """(inputs, labels, frozen part to run on the inputs first or None) of the next step."""
        if self.cache is None:
            images, labels = self.next_batch()
            return images, labels, self.frozen
        assert self.frozen is not None
        epoch, within = divmod(self.step, self.steps_per_epoch)
        if within == 0 or self.batches is None:
            self.batches = self.cached_epoch_batches(epoch, within)
        images, labels, indices = next(self.batches)
        if images is None:
            outputs = self.cache.get(indices).to(self.device, non_blocking=True)
        else:
            with torch.no_grad(), self.precision.autocast():
                outputs = self.frozen(images.to(self.device, non_blocking=True))
            self.cache.put(indices, outputs)
        return outputs, labels.to(self.device, non_blocking=True), None


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


def make_head(
    head: HeadSpec, margin: MarginSpec, embedding_size: int, num_classes: int, seed: int, world: World
) -> torch.nn.Module:
    """The head plug-in with its margin loss plug-in, its class centres drawn from `seed`."""
    margin_loss = plugins.resolve(margin["plugin"])(
        margin["s"], margin["m1"], margin["m2"], margin["m3"], margin["interclass_filtering_threshold"]
    )
    head_cls = plugins.resolve(head["plugin"])
    options = {"sample_rate": head["sample_rate"], "sample_num_feat": head["sample_num_feat"]}
    # Under DDP, which averages the backbone's gradients, the head must scale the embedding
    # gradient by W. A plug-in without `ddp_backbone` is taken to do so itself, as UNICOM's does.
    if world.size > 1 and "ddp_backbone" in inspect.signature(head_cls).parameters:
        options["ddp_backbone"] = True
    module = head_cls(margin_loss, embedding_size, num_classes, **options)
    init_class_centres(module, seed)
    return module.to(world.device())


def class_rows(session: Session) -> slice | None:
    """The rows of the whole class-centre matrix that this rank's head holds (PartialFC_V2's
    shard); None for a head without shard attributes, which every rank holds whole."""
    head = session.head
    return slice(head.class_start, head.class_start + head.num_local) if hasattr(head, "num_local") else None


def head_parameters(head: torch.nn.Module, num_classes: int) -> int:
    """Over all ranks: this rank's parameters plus the class-centre rows the others hold."""
    local = sum(p.numel() for p in head.parameters())
    return local + (num_classes - head.num_local) * head.weight.shape[1] if hasattr(head, "num_local") else local
