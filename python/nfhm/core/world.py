"""The processes one worker runs as, and how they share work: one process (rank 0 of 1), or
the ranks torchrun starts (``init``).

Two process groups: the default one carries tensors (nccl on CUDA, gloo on CPU); a gloo
*control* group carries Python objects (requests between ranks, gathered results). The control
group's timeout is long because followers wait on it between requests for as long as the
orchestrator takes (a TCP server between clients: hours); how rank 0 drives the others is
nfhm/rpc/torchrun.py. A rank that fails while the others are inside a tensor collective leaves
them waiting until that group's timeout; torchrun ends every rank when one process exits.

Outside torchrun the world is one process and nothing here communicates.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .freeze import TrainedPart

CONTROL_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    control: dist.ProcessGroup | None = None  # gloo, for requests and Python objects

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        """This rank's compute device: its own GPU (by local rank) when there are GPUs."""
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")


_world = World()


def world() -> World:
    return _world


def init() -> World:
    """Joins the process group that torchrun describes in the environment."""
    global _world
    missing = [name for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise SystemExit(f"nfhm.rpc.serve --distributed runs under torchrun (missing {', '.join(missing)} in the environment)")
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = torch.cuda.is_available()
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise SystemExit(
                f"local rank {local_rank} has no GPU of its own: this machine has {torch.cuda.device_count()}; "
                "start at most that many processes per node"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
    _world = World(dist.get_rank(), dist.get_world_size(), local_rank, control)
    return _world


# --- splitting work and gathering results -------------------------------------


def part(n: int) -> slice:
    """This rank's contiguous share of n items (the first n % W ranks take one more)."""
    base, extra = divmod(n, _world.size)
    start = base * _world.rank + min(_world.rank, extra)
    return slice(start, start + base + int(_world.rank < extra))


def gather_to_leader(obj: Any) -> list[Any] | None:
    """Every rank's `obj` in rank order on rank 0; None on the others."""
    if _world.size == 1:
        return [obj]
    out: list[Any] | None = [None] * _world.size if _world.leader else None
    dist.gather_object(obj, out, dst=0, group=_world.control)
    return out


def gather_sizes(batch: int, device: torch.device, group: dist.ProcessGroup) -> list[int]:
    """Every rank's row count, on every rank."""
    local = torch.tensor([batch], device=device)
    sizes = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, local, group=group)
    return [int(s.item()) for s in sizes]


def all_gather_rows(tensor: torch.Tensor, sizes: list[int], group: dist.ProcessGroup) -> torch.Tensor:
    """Concatenate every rank's rows in rank order; ranks may hold different row counts."""
    padded = tensor.new_zeros((max(sizes),) + tuple(tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


def gather_rows_to_leader(tensor: torch.Tensor) -> torch.Tensor | None:
    """Every rank's rows (e.g. its class shard), concatenated in rank order on rank 0, on the
    CPU and over the control group, so a large head never needs W copies of itself on a GPU."""
    local = tensor.detach().cpu()
    if _world.size == 1:
        return local
    sizes = gather_sizes(local.shape[0], local.device, _world.control)
    padded = local.new_zeros((max(sizes),) + tuple(local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in sizes] if _world.leader else None
    dist.gather(padded, parts, dst=0, group=_world.control)
    return torch.cat([p[:size] for p, size in zip(parts, sizes, strict=True)]) if parts else None


# --- data-parallel training ----------------------------------------------------


def data_parallel(model: nn.Module, trained_part: bool = False) -> tuple[nn.Module, nn.Module]:
    """(model, what the training step calls). With several ranks: BatchNorm statistics over the
    global batch (torch's SyncBatchNorm on CUDA; nfhm's GlobalBatchNorm on CPU, where
    SyncBatchNorm refuses to run) and DDP, which averages gradients over the ranks. Buffers are
    not broadcast: synchronised BatchNorm keeps them equal on every rank. With `trained_part`
    the step calls ``model.forward_trained`` (a partly frozen model, nfhm/core/freeze.py)."""
    if _world.size == 1:
        return model, TrainedPart(model) if trained_part else model
    from torch.nn.parallel import DistributedDataParallel

    from .sync_batchnorm import convert_to_global_batchnorm

    device = _world.device()
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        model = convert_to_global_batchnorm(model)
    # torch 2.13 renamed the option (the old name warns); older releases know only the old one.
    renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_buffer_sync = {"forward_sync_buffers" if renamed else "broadcast_buffers": False}
    target = TrainedPart(model) if trained_part else model
    wrapped = DistributedDataParallel(target, device_ids=[device.index] if device.type == "cuda" else None, **no_buffer_sync)
    return model, wrapped
