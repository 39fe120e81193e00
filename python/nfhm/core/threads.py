"""How many threads torch's CPU kernels get beside the DataLoader's worker processes.

torch starts one thread per core and the DataLoader forks its workers on top: with one loader
worker on 2 cores, a ViT-T/4@28px training epoch of the demo took 83 s against 55 s with one
torch thread, because OpenMP threads that lose their core spin-wait for each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def cores_shared(loader_workers: int) -> Iterator[int]:
    """Within the block torch gets the cores the loader workers and the other local ranks leave.

    The count is put back afterwards: torch and faiss share one OpenMP runtime, so k-means and
    search after an embedding would otherwise run on one thread. A user's OMP_NUM_THREADS wins.
    """
    before = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, cores // local_ranks - loader_workers))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
