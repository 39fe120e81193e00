"""Partial fine-tuning: the first blocks of a backbone frozen, and their output cached when exact.

A model that can be partly frozen follows a small protocol (``PartlyFrozen``, a mixin of the
UNICOM ViTs and EfficientNet-Lite):

* ``num_blocks``: how many blocks ``freeze`` may count;
* ``freeze(n)``: n = 0 freezes nothing; n >= 1 freezes the stem (patch embedding and position
  embedding for a ViT) and the first n blocks: their parameters stop requiring gradients and
  their BatchNorms stay in eval mode (running statistics untouched) even in ``model.train()``;
* ``forward_frozen(x)`` runs exactly the frozen part (the identity when nothing is frozen) and
  ``forward_trained(h)`` the rest, with ``forward(x) == forward_trained(forward_frozen(x))``.

Nothing random runs in a frozen part (eval mode also switches off drop-path there), so its
output depends on the input image only. When the training images are not augmented either,
it is the same every epoch: ``FrozenCache`` keeps it per image, and epochs after the first pay
only for the trained part.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .precision import Precision

# Keep the frozen part's outputs when they fit in this much (CPU) memory.
FROZEN_CACHE_BYTES = 2 << 30


class PartlyFrozen:
    """Mixin for an ``nn.Module`` with a ``blocks`` ModuleList; the class names its stem with
    ``_stem_parts`` (modules and parameters before the first block)."""

    frozen_blocks: int = 0

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)  # type: ignore[attr-defined]

    def _stem_parts(self) -> list[nn.Module | nn.Parameter]:
        raise NotImplementedError

    def frozen_parts(self) -> list[nn.Module | nn.Parameter]:
        """The frozen stem parts and blocks, in forward order (empty when nothing is frozen)."""
        if self.frozen_blocks == 0:
            return []
        return [*self._stem_parts(), *self.blocks[: self.frozen_blocks]]  # type: ignore[attr-defined]

    def freeze(self, n: int) -> PartlyFrozen:
        """Freeze the stem and the first n blocks (n = 0: nothing); returns the model."""
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= self.num_blocks:
            raise ValueError(f"freeze={n!r}: expected a whole number of blocks in 0..{self.num_blocks}")
        self.frozen_blocks = n
        module: nn.Module = self  # type: ignore[assignment]
        for parameter in module.parameters():
            parameter.requires_grad_(True)
        for part in self.frozen_parts():
            for parameter in [part] if isinstance(part, nn.Parameter) else part.parameters():
                parameter.requires_grad_(False)
        return module.train(module.training)  # type: ignore[return-value]

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]
        super().train(mode)  # type: ignore[misc]
        for part in self.frozen_parts():  # frozen BatchNorm keeps its running statistics
            if isinstance(part, nn.Module):
                part.eval()
        return self


def freezable_blocks(model: nn.Module) -> int | None:
    """How many blocks ``train.freeze`` may count for `model`; None when it cannot be partly frozen."""
    if isinstance(model, PartlyFrozen):
        return model.num_blocks
    return None


def apply_freeze(model: nn.Module, n: int, name: str) -> None:
    """``model.freeze(n)``, refused with a message naming ``train.freeze``, the value and the range."""
    blocks = freezable_blocks(model)
    if n == 0 and blocks is None:
        return
    if blocks is None:
        raise ValueError(f"train.freeze={n}: model {name!r} cannot be partly frozen; allowed: 0 (fine-tune everything)")
    if not 0 <= n <= blocks:
        raise ValueError(
            f"train.freeze={n}: model {name!r} has {blocks} blocks; allowed: 0..{blocks} "
            "(0 = fine-tune everything, n = the stem and the first n blocks frozen)"
        )
    model.freeze(n)  # type: ignore[attr-defined]


def embedding_head(model: nn.Module) -> nn.Module | None:
    """The module that maps the trunk's features to the embedding (``train.embedding_lr_scale``
    applies to it); None when the model has none of its own."""
    head = getattr(model, "embedding_head", None)
    return head if isinstance(head, nn.Module) else None


class TrainedPart(nn.Module):
    """``model.forward_trained`` as a module's forward, so that DDP can wrap the trained part alone."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frozen_output: torch.Tensor) -> torch.Tensor:
        return self.model.forward_trained(frozen_output)  # type: ignore[operator]


def augmentation_is_off(augment: dict) -> bool:
    """True when training images are the eval crop every epoch: no random crop, flip, RandAugment
    or erasing (train.augment crop_scale [1, 1], hflip_prob 0, randaug_ops 0, erasing_prob 0)."""
    return (
        tuple(float(s) for s in augment["crop_scale"]) == (1.0, 1.0)
        and augment["hflip_prob"] == 0
        and augment["randaug_ops"] == 0
        and augment["erasing_prob"] == 0
    )


def frozen_cache(
    model: nn.Module, count: int, image_size: int, precision: Precision, device: torch.device, augment: dict
) -> FrozenCache | None:
    """A cache for the frozen part's output on `count` images when that output is exact (no
    augmentation) and fits in FROZEN_CACHE_BYTES; the size per image comes from one blank
    image through the frozen part."""
    if not augmentation_is_off(augment):
        return None
    with torch.no_grad(), precision.autocast():
        probe = model.forward_frozen(torch.zeros(1, 3, image_size, image_size, device=device))  # type: ignore[operator]
    shape, dtype = tuple(probe.shape[1:]), probe.dtype
    if FrozenCache.bytes_needed(count, shape, dtype) > FROZEN_CACHE_BYTES:
        return None
    return FrozenCache(count, shape, dtype)


class FrozenCache:
    """The frozen part's output per training image, on the CPU, filled the first time each image
    is seen (the first epoch, in one process) and reused after."""

    def __init__(self, count: int, shape: Sequence[int], dtype: torch.dtype) -> None:
        self.values = torch.empty((count, *shape), dtype=dtype)
        self.filled = torch.zeros(count, dtype=torch.bool)

    @staticmethod
    def bytes_needed(count: int, shape: Sequence[int], dtype: torch.dtype) -> int:
        return count * int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()

    @property
    def nbytes(self) -> int:
        return self.values.numel() * self.values.element_size()

    def has(self, indices: Sequence[int]) -> bool:
        return bool(self.filled[list(indices)].all())

    def put(self, indices: Sequence[int], values: torch.Tensor) -> None:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        self.values[index] = values.detach().to("cpu", self.values.dtype)
        self.filled[index] = True

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        return self.values[torch.as_tensor(list(indices), dtype=torch.long)]
