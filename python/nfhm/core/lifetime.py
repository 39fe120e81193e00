"""No process outlives the one that started it: the worker its orchestrator (or torchrun's
agent), a DataLoader process its worker."""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable


def die_with_parent(parent: int | None = None) -> None:
    """This process ends when its parent does, even a parent killed with SIGKILL.

    `parent`: the pid the parent must have (default: whatever it is now). A process whose
    parent is already gone (it was adopted by init or a subreaper) ends at once.
    """
    expected = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # prctl misses a parent that died before it ran, and other systems lack it: this check
    # after it sees the first case, the watch below the second.
    if os.getppid() != expected:
        os._exit(1)

    def watch() -> None:
        while True:
            if os.getppid() != expected:
                os._exit(1)
            threading.Event().wait(0.5)

    threading.Thread(target=watch, name="nfhm-parent-watch", daemon=True).start()


def _die_with_worker(parent: int | None, _: int) -> None:
    die_with_parent(parent)


def die_with_this_process() -> Callable[[int], None]:
    """A DataLoader `worker_init_fn`: each loader process ends the moment this process does.

    The pid is taken here, in the worker: a loader that read its parent's pid itself would
    read 1 if the worker died before the loader started, and then wait for ever. (torch's own
    watchdog reads it that way, and notices a dead parent only every 5 s; until then a loader
    holds the worker's pipes open, so the orchestrator cannot finish.) A fork server (Python
    3.14's default start method on Linux) is a loader's parent instead, and ends with this
    process: the loader watches it as it finds it.
    """
    forked_here = multiprocessing.get_start_method() != "forkserver"
    return functools.partial(_die_with_worker, os.getpid() if forked_here else None)
