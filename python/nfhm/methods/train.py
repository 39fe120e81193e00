"""`train.start`, `train.steps`, `train.checkpoint` and `train.export`: one training session
(nfhm/core/train_session.py) per worker, stepped as the orchestrator's schedule asks.

Under torchrun every rank runs these methods (all are collective); rank 0 writes the files.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist

from ..core import freeze as freezing
from ..core.atomic import atomic_path
from ..core.export import ExportFormats, export_model
from ..core.freeze import FrozenCache, apply_freeze, augmentation_is_off, frozen_cache
from ..core.model_spec import ModelSpec, build_model
from ..core.precision import Precision
from ..core.threads import cores_shared
from ..core.train_checkpoint import restore, whole_state
from ..core.train_images import TrainImages, decode_all
from ..core.train_session import (
    RANK_STREAM,
    HeadSpec,
    MarginSpec,
    Session,
    class_rows,
    head_parameters,
    make_head,
    sample_seed,
)
from ..core.train_step import NonFiniteLoss, make_optimizer, set_step_hyperparameters, train_step
from ..core.transforms import CLIP_MEAN, CLIP_STD, Augmentation, AugmentSpec, TrainTransform
from ..core.world import data_parallel, gather_rows_to_leader, world
from .handler import Handler, Result, Tables
from .state import WorkerState


def _session(state: WorkerState) -> Session:
    if state.session is None:
        raise RuntimeError("no training session: call train.start first")
    return state.session


def start(
    state: WorkerState,
    tables: Tables,
    *,
    model: ModelSpec,
    head: HeadSpec,
    margin: MarginSpec,
    num_classes: int,
    batch_size: int,
    weight_decay: float,
    head_lr_scale: float,
    freeze: int,
    embedding_lr_scale: float,
    precision: Literal["fp32", "bf16", "fp16"],
    augment: AugmentSpec,
    seed: int,
    loader_workers: int,
    resume: str | None,
) -> Result:
    """A new session over table `train` (id, path, label: pseudo-labels in [0, num_classes))."""
    state.session = None
    table = tables["train"]
    paths = table["path"].to_pylist()
    labels = table["label"].to_numpy().astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"pseudo-labels must lie in [0, {num_classes}); got [{labels.min()}, {labels.max()}]")
    if len(paths) < batch_size:
        raise ValueError(f"{len(paths)} training images cannot fill one batch of {batch_size}; lower train.batch_size")
    ranks = world()
    if batch_size % ranks.size:
        raise ValueError(
            f"train.batch_size={batch_size} is the global batch and must split evenly over the {ranks.size} processes"
        )

    torch.manual_seed(seed)
    device = ranks.device()
    backbone_model, eval_transform, embedding_size, image_size = build_model(model, device)
    apply_freeze(backbone_model, freeze, model["name"])
    backbone_model.train()
    backbone_model, backbone = data_parallel(backbone_model, trained_part=freeze > 0)
    head_module = make_head(head, margin, embedding_size, num_classes, seed, ranks)
    # Drop-path draws from the global RNG: a stream of its own on every rank.
    torch.manual_seed(sample_seed(seed, RANK_STREAM, ranks.rank))
    optimizer = make_optimizer(
        backbone_model,
        head_module,
        lr=1.0,
        head_lr_scale=head_lr_scale,
        weight_decay=weight_decay,
        embedding_lr_scale=embedding_lr_scale,
    )
    policy = Precision.from_name(precision, device, process_group=dist.group.WORLD if ranks.size > 1 else None)
    # The model's own input normalisation (CLIP's for the UNICOM ViTs, (x - 127) / 128 for
    # EfficientNet-Lite): training sees what embedding sees.
    mean, std = getattr(eval_transform, "mean", CLIP_MEAN), getattr(eval_transform, "std", CLIP_STD)
    transform = TrainTransform(image_size, Augmentation.from_params(augment), mean, std)
    frozen, cache = None, None
    if freeze > 0:
        frozen = backbone_model.forward_frozen
        cache = frozen_cache(backbone_model, len(paths), image_size, policy, device, augment)
        if ranks.leader:
            log_freeze(model["name"], freeze, backbone_model.num_blocks, cache, len(paths), augment)
    images = TrainImages(paths, labels, transform, decode_all(paths, loader_workers))
    session = Session(
        model=backbone_model,
        backbone=backbone,
        head=head_module,
        optimizer=optimizer,
        precision=policy,
        images=images,
        device=device,
        batch_size=batch_size,
        seed=seed,
        loader_workers=loader_workers,
        steps_per_epoch=len(paths) // batch_size,
        num_classes=num_classes,
        embedding_size=embedding_size,
        world=ranks,
        frozen=frozen,
        cache=cache,
    )
    if resume:
        restore(session, resume)
    state.session = session
    return {
        "steps_per_epoch": session.steps_per_epoch,
        "start_step": session.step,
        "embedding_size": embedding_size,
        "parameters": {
            "backbone": sum(p.numel() for p in backbone_model.parameters()),
            "head": head_parameters(head_module, num_classes),
        },
        "device": str(device),
    }


def log_freeze(
    name: str, freeze: int, blocks: int, cache: FrozenCache | None, count: int, augment: AugmentSpec
) -> None:
    """Which path training takes, once, in the worker's log."""
    if cache is not None:
        how = (
            f"the frozen part's outputs are cached from the first epoch on: {count} images x "
            f"{tuple(cache.values.shape[1:])} {str(cache.values.dtype).removeprefix('torch.')} = "
            f"{cache.nbytes / 2**20:.1f} MiB"
        )
    elif not augmentation_is_off(augment):
        how = (
            "the frozen part runs every step (no cache: train.augment is on; caching needs crop_scale [1, 1], "
            "hflip_prob 0, randaug_ops 0 and erasing_prob 0)"
        )
    else:
        limit = freezing.FROZEN_CACHE_BYTES / 2**30
        how = f"the frozen part runs every step (no cache: it would need more than {limit:g} GiB)"
    message = f"train.start: train.freeze={freeze}: the stem and {freeze} of {name}'s {blocks} blocks frozen; {how}"
    print(message, file=sys.stderr, flush=True)


def steps(
    state: WorkerState, tables: Tables, *, lr: list[tuple[float, float]], beta1: list[tuple[float, float]]
) -> Result:
    """Step i uses lr[i] = [backbone, head] and beta1[i]; stops before applying a non-finite loss."""
    session = _session(state)
    started = time.perf_counter()
    first_step = session.step
    losses: list[float] = []
    grad_norms: list[float] = []
    nonfinite: int | None = None
    with cores_shared(session.loader_workers):
        for lrs, betas in zip(lr, beta1):
            set_step_hyperparameters(session.optimizer, lrs, betas)
            inputs, labels, frozen = session.next_inputs()
            try:
                stats = train_step(
                    session.backbone,
                    session.head,
                    inputs,
                    labels,
                    session.optimizer,
                    session.precision,
                    session.batch_size,
                    frozen=frozen,
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


def checkpoint(state: WorkerState, tables: Tables, *, path: str) -> Result:
    """The whole session, gathered on rank 0, written to `path`."""
    session = _session(state)
    saved = whole_state(session)
    if saved is None:
        return {}
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)
    return {"step": session.step, "bytes": os.path.getsize(path)}


def export(
    state: WorkerState,
    tables: Tables,
    *,
    model_path: str,
    centroids_path: str,
    model: ModelSpec,
    round: int,
    formats: ExportFormats,
) -> Result:
    """trained_model.pt in UNICOM's key layout and final_centroids.npy (the whole C x E class
    matrix, gathered from every rank), as the group saved them, then the other formats and the
    model card beside the .pt (nfhm/core/export.py); ends the session."""
    session = _session(state)
    state.session = None
    weight = session.head.weight
    centres = gather_rows_to_leader(weight) if class_rows(session) is not None else weight.detach().cpu()
    if not session.world.leader:
        return {}
    with atomic_path(model_path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in session.model.state_dict().items()}, tmp)
    centroids = centres.float().numpy()
    with atomic_path(centroids_path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, centroids)
    classes = int(centroids.shape[0])
    exports = export_model(model, model_path, {"round": round, "step": session.step, "classes": classes}, formats)
    return {
        "step": session.step,
        "classes": classes,
        "embedding_size": int(centroids.shape[1]),
        "files": {"safetensors": exports.safetensors, "onnx": exports.onnx, "card": exports.card},
        "onnx_parity": exports.onnx_parity,
        "warnings": exports.warnings,
    }


METHODS: dict[str, Handler] = {
    "train.start": start,
    "train.steps": steps,
    "train.checkpoint": checkpoint,
    "train.export": export,
}
COLLECTIVE = frozenset(METHODS)
