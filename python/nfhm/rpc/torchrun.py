"""Several processes under torchrun, driven as one worker.

    torchrun --nproc-per-node N -m nfhm.rpc.serve --stdio --distributed

Rank 0 serves the RPC (stdio or TCP) exactly as a lone worker does; the other ranks follow it:

* A *collective* method (listed in its module's ``COLLECTIVE``: embedding, search, the training
  session) is broadcast to every rank as (name, params, tables); each rank runs it on its part
  of the work (nfhm/core/world.py splits it); then the ranks compare outcomes, and rank 0
  answers with its own result, or with the error of the first rank that failed ("rank r: ..."
  when that is not rank 0).
* Every other method (reading tables, k-means, file queries) runs on rank 0 alone.

Requests and outcomes travel over the world's gloo control group.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

from ..core.world import world
from ..methods.state import WorkerState
from .registry import Dispatch, Registry


def _broadcast(request: Any) -> Any:
    box = [request]
    dist.broadcast_object_list(box, src=0, group=world().control)
    return box[0]


def _settle(reply: dict[str, Any]) -> dict[str, Any]:
    """Every rank's outcome to rank 0: its own reply, or the first failure among the ranks."""
    outcomes: list[Any] = [None] * world().size
    dist.all_gather_object(outcomes, None if reply["ok"] else reply["error"], group=world().control)
    if reply["ok"] and any(outcomes):
        rank, error = next((r, e) for r, e in enumerate(outcomes) if e)
        return {"ok": False, "error": {**error, "message": f"rank {rank}: {error['message']}"}}
    return reply


def lead(registry: Registry) -> Dispatch:
    """Rank 0's dispatch: collective methods go to every rank first."""

    def run(
        state: WorkerState, name: str, params: dict[str, Any], tables: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if world().size == 1 or name not in registry.collective:
            return registry.dispatch(state, name, params, tables)
        _broadcast((name, params, tables))
        reply, out_tables = registry.dispatch(state, name, params, tables)
        settled = _settle(reply)
        return settled, out_tables if settled["ok"] else {}

    return run


def follow(state: WorkerState, registry: Registry) -> None:
    """A follower's life: run what rank 0 broadcasts until it says stop. Its results are
    placeholders (rank 0 answers), so they are not held to the contract."""
    while (request := _broadcast(None)) is not None:
        name, params, tables = request
        reply, _ = registry.dispatch(state, name, params, tables, check_result=False)
        _settle(reply)


def release_followers() -> None:
    """Rank 0, when it stops serving: the followers return from `follow`."""
    if world().size > 1:
        _broadcast(None)
