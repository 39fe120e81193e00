"""One optimisation step of UNICOM's recipe, and the optimiser/schedule it uses.

AdamW with two parameter groups (backbone at ``lr``, head at ``lr * head_lr_scale``, 5 by
default as in UNICOM's retrieval.py), weight decay 0, and OneCycleLR (10% warm-up) stepped
every iteration. The step autocasts only the backbone; the head's cosine logits and softmax
stay fp32.

Partial fine-tuning (nfhm/core/freeze.py): frozen parameters are not given to AdamW at all, and
the step runs the frozen part under ``torch.no_grad()``. ``embedding_lr_scale`` != 1 moves the
backbone's embedding head into a third group at ``lr * embedding_lr_scale``; at 1 there is no
third group, so the optimiser (and its checkpoints) are those of a run without the option.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .freeze import embedding_head
from .precision import Precision

# UNICOM's BatchNorm head gives unreliable statistics below this many samples per step.
MIN_BATCHNORM_BATCH = 16


def make_optimizer(
    backbone: nn.Module,
    head: nn.Module,
    lr: float,
    head_lr_scale: float = 5.0,
    weight_decay: float = 0.0,
    embedding_lr_scale: float = 1.0,
) -> torch.optim.AdamW:
    """Groups: [backbone (trainable parameters only), head] and, when ``embedding_lr_scale`` != 1,
    the backbone's embedding head third (its ``lr_scale`` key: its lr relative to the backbone's)."""
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    groups = [{"params": trainable, "lr": lr}, {"params": list(head.parameters()), "lr": lr * head_lr_scale}]
    if embedding_lr_scale != 1.0:
        module = embedding_head(backbone)
        if module is None:
            raise ValueError(
                f"train.embedding_lr_scale={embedding_lr_scale}: this backbone has no embedding head of its own; allowed: 1"
            )
        moved = {id(p) for p in module.parameters()}
        groups[0]["params"] = [p for p in trainable if id(p) not in moved]
        groups.append(
            {
                "params": [p for p in module.parameters() if p.requires_grad],
                "lr": lr * embedding_lr_scale,
                "lr_scale": embedding_lr_scale,
            }
        )
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def set_step_hyperparameters(
    optimizer: torch.optim.Optimizer, lrs: tuple[float, float], beta1s: tuple[float, float]
) -> None:
    """The orchestrator's [backbone, head] lr and beta1 for one step; a third (embedding head)
    group follows the backbone's, its lr scaled by its ``lr_scale``."""
    groups = optimizer.param_groups
    for group, group_lr, group_beta1 in zip(groups, lrs, beta1s):
        group["lr"] = group_lr
        group["betas"] = (group_beta1, group["betas"][1])
    for group in groups[2:]:
        group["lr"] = lrs[0] * group["lr_scale"]
        group["betas"] = (beta1s[0], group["betas"][1])


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, pct_start: float = 0.1
) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycleLR peaking at each group's configured lr."""
    if total_steps * pct_start <= 1:
        # torch divides by (pct_start * total_steps - 1) and fails with ZeroDivisionError.
        raise ValueError(f"OneCycleLR needs total_steps * pct_start > 1, got {total_steps} * {pct_start}")
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def min_train_batch(model: nn.Module) -> int:
    """The smallest batch `model` trains on: MIN_BATCHNORM_BATCH if it has BatchNorm layers."""
    return MIN_BATCHNORM_BATCH if _has_batchnorm(model) else 1


class NonFiniteLoss(FloatingPointError):
    """The loss is NaN or infinite; the step was not applied."""


@dataclass(frozen=True)
class StepStats:
    loss: float
    grad_norm: float  # of the backbone's gradients, unscaled
    applied: bool  # False when fp16 gradients overflowed and the scaler skipped the step


def train_step(
    backbone: nn.Module,
    head: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    batchnorm_batch: int | None = None,
    frozen: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> StepStats:
    """Forward, backward and optimiser step (the caller steps its schedule).

    A non-finite loss raises NonFiniteLoss before anything is updated, so the weights
    stay those of the last good step. ``batchnorm_batch``: the number of samples BatchNorm
    normalises over when it is synchronised across ranks (default: this call's batch).
    ``frozen``: the model's frozen part, run first under ``torch.no_grad()``; `backbone` is then
    the trained part (nfhm/core/freeze.py). Without it `images` go straight into `backbone`
    (the whole model, or the trained part given cached outputs of the frozen part).
    """
    batch = batchnorm_batch or images.shape[0]
    if backbone.training and batch < MIN_BATCHNORM_BATCH and _has_batchnorm(backbone):
        raise ValueError(
            f"batch of {batch} is too small for the BatchNorm head: it needs at least "
            f"{MIN_BATCHNORM_BATCH} samples per step (train.batch_size)"
        )
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        if frozen is not None:
            with torch.no_grad():
                images = frozen(images)
        embeddings = backbone(images)
    loss = head(embeddings.float(), labels)
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLoss(f"loss is {value}")
    precision.scale_loss(loss).backward()
    precision.unscale(optimizer)
    grads = [p.grad for p in backbone.parameters() if p.grad is not None]
    grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item() if grads else 0.0
    applied = precision.step(optimizer)
    return StepStats(value, grad_norm, applied)
