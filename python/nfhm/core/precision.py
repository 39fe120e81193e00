"""Mixed precision as a policy the caller picks: "fp32", "bf16" or "fp16".

    precision = Precision.from_name("bf16", device)
    with precision.autocast():
        embeddings = backbone(images)
    loss = head(embeddings, labels)            # PartialFC_V2 computes in fp32 regardless
    precision.scale_loss(loss).backward()
    applied = precision.step(optimizer)        # False when fp16 overflowed and the step was skipped

fp16 always comes with a GradScaler (fp16 autocast without one underflows gradients: the
"loss stays flat" failure); bf16 has fp32's range and needs none. ``step`` raises
``FloatingPointError`` once the fp16 scale falls below ``min_scale``: below 1 the gradients
overflow fp16 even unscaled, i.e. they are inf/NaN and training has diverged.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    name: str
    device_type: str
    dtype: torch.dtype | None  # autocast dtype; None = no autocast
    scaler: torch.amp.GradScaler
    min_scale: float = 1.0
    # Ranks whose overflow checks must agree (their gradients differ: each holds its own class
    # shard of the head), so that they all skip, or all apply, the same fp16 steps.
    process_group: dist.ProcessGroup | None = None

    @classmethod
    def from_name(
        cls, name: str, device: torch.device | str, min_scale: float = 1.0, process_group: dist.ProcessGroup | None = None
    ) -> Precision:
        if name not in DTYPES:
            raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(DTYPES)}")
        device_type = torch.device(device).type
        scaler = torch.amp.GradScaler(device_type, enabled=name == "fp16")
        return cls(name, device_type, DTYPES[name], scaler, min_scale, process_group)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss)

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the scale now (to measure them); ``step`` then uses them as they are."""
        if self.scaler.is_enabled():
            self.scaler.unscale_(optimizer)
            if self.process_group is not None:
                # GradScaler has no public hook for this; its per-optimizer state is where
                # step() reads the overflow flags that unscale_ just wrote.
                found = self.scaler._per_optimizer_states[id(optimizer)]["found_inf_per_device"]
                for flag in found.values():
                    dist.all_reduce(flag, dist.ReduceOp.MAX, group=self.process_group)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale, step (unless gradients overflowed) and update the scale; True if applied."""
        if not self.scaler.is_enabled():
            optimizer.step()
            return True
        before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        after = self.scaler.get_scale()
        if after < self.min_scale:
            raise FloatingPointError(
                f"fp16 loss scale fell to {after:g}: the gradients are inf/NaN even unscaled. "
                "Lower the learning rate, check the data, or use bf16/fp32."
            )
        return after >= before

    def state_dict(self) -> dict[str, Any]:
        """The loss-scaler state, to save with a checkpoint so a resume keeps the scale."""
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scaler.load_state_dict(state)
