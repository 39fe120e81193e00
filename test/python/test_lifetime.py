"""A DataLoader process ends with its worker, even one that died before the loader started
(the loader's parent is then init or a subreaper, which never dies). The whole CLI, killed at
random moments, is tried in test/faults-orphans.test.ts."""

import os
import signal
import subprocess
import sys

import pytest

# The worker forks a loader and exits before the loader runs its worker_init_fn. The loader
# shares the worker's stdout, so the output ends only when the loader has ended too.
WORKER = """
import os, time
from nfhm.core.lifetime import die_with_parent, die_with_this_process
die_with_parent(os.getppid())  # a live parent: this returns
init = die_with_this_process()
read, write = os.pipe()
if os.fork() == 0:
    print(os.getpid(), flush=True)
    worker = os.getppid()
    os.close(write)
    os.read(read, 1)  # end of file: the worker has exited
    while os.getppid() == worker:
        time.sleep(0.01)
    init(0)
    time.sleep(600)  # where a loader left behind would wait
    os._exit(0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_a_loader_whose_worker_died_before_it_started_ends_at_once() -> None:
    try:
        out = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        loader = int(bytes(e.stdout or b"0").split()[0])
        os.kill(loader, signal.SIGKILL)
        pytest.fail(f"the loader {loader} outlived its worker")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().isdigit()
