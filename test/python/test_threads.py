"""torch's CPU threads leave room for the DataLoader's workers, unless the user chose."""

import os
import subprocess
import sys

import pytest

PROBE = "from nfhm.threads import share_cores; print(share_cores({workers}))"


def probe(workers: int, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(workers=workers)], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs the CPU affinity mask")
def test_loader_workers_take_cores_from_torch() -> None:
    cores = len(os.sched_getaffinity(0))
    assert probe(0) == cores
    assert probe(1) == max(1, cores - 1)
    assert probe(cores + 3) == 1
    assert probe(0, LOCAL_WORLD_SIZE="2") == max(1, cores // 2)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs the CPU affinity mask")
def test_users_omp_num_threads_wins() -> None:
    cores = len(os.sched_getaffinity(0))
    assert probe(cores, OMP_NUM_THREADS=str(cores)) == cores  # the rule alone would leave 1
