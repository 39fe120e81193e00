"""One optimisation step of UNICOM's recipe, and the optimiser/schedule it uses.

AdamW with two parameter groups (backbone at ``lr``, head at ``lr * head_lr_scale``, 5 by
default as in UNICOM's retrieval.py), weight decay 0, and OneCycleLR (10% warm-up) stepped
every iteration. The step autocasts only the backbone; the head's cosine logits and softmax
stay fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .precision import Precision

# UNICOM's BatchNorm head gives unreliable statistics below this many samples per step.
MIN_BATCHNORM_BATCH = 16


def make_optimizer(
    backbone: nn.Module, head: nn.Module, lr: float, head_lr_scale: float = 5.0, weight_decay: float = 0.0
) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        [
            {"params": list(backbone.parameters()), "lr": lr},
            {"params": list(head.parameters()), "lr": lr * head_lr_scale},
        ],
        lr=lr,
        weight_decay=weight_decay,
    )


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
) -> StepStats:
    """Forward, backward and optimiser step (the caller steps its schedule).

    A non-finite loss raises NonFiniteLoss before anything is updated, so the weights
    stay those of the last good step. ``batchnorm_batch``: the number of samples BatchNorm
    normalises over when it is synchronised across ranks (default: this call's batch).
    """
    batch = batchnorm_batch or images.shape[0]
    if backbone.training and batch < MIN_BATCHNORM_BATCH and _has_batchnorm(backbone):
        raise ValueError(
            f"batch of {batch} is too small for the BatchNorm head "
            f"(>= {MIN_BATCHNORM_BATCH}; use drop_last=True and a larger batch)"
        )
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
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
