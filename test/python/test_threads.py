"""torch's CPU threads leave room for the DataLoader's workers, unless the user chose, and only
for as long as the work lasts (faiss shares torch's OpenMP runtime)."""

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, faiss, torch
from nfhm.core.threads import cores_shared
before = (torch.get_num_threads(), faiss.omp_get_max_threads())
with cores_shared({workers}) as inside:
    pass
print(json.dumps([inside, before, (torch.get_num_threads(), faiss.omp_get_max_threads())]))
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs the CPU affinity mask")


def probe(workers: int, **env: str) -> tuple[int, list[int], list[int]]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(workers=workers)], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    inside, before, after = json.loads(out.stdout)
    return inside, before, after


def test_loader_workers_take_cores_from_torch_for_the_block_only() -> None:
    cores = len(os.sched_getaffinity(0))
    assert probe(0)[0] == cores
    assert probe(1)[0] == max(1, cores - 1)
    assert probe(cores + 3)[0] == 1
    assert probe(0, LOCAL_WORLD_SIZE="2")[0] == max(1, cores // 2)
    inside, before, after = probe(1)
    assert after == before  # k-means and search after an embedding get their threads back


def test_users_omp_num_threads_wins() -> None:
    cores = len(os.sched_getaffinity(0))
    assert probe(cores, OMP_NUM_THREADS=str(cores))[0] == cores  # the rule alone would leave 1
