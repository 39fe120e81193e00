"""No process outlives the one that started it: the worker its orchestrator (or torchrun's
agent), a DataLoader process its worker."""

from __future__ import annotations

import os
import sys
import threading


def die_with_parent() -> None:
    """This process ends when its parent does, even a parent killed with SIGKILL."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # prctl misses a parent that died before it ran, and other systems lack it.

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            threading.Event().wait(0.5)

    threading.Thread(target=watch, name="nfhm-parent-watch", daemon=True).start()


def die_with_worker(_: int) -> None:
    """DataLoader `worker_init_fn`: a loader process ends the moment the worker does.

    torch's loader processes notice a dead parent only every 5 s; until then they are left
    behind and hold the worker's pipes open, so the orchestrator cannot finish.
    """
    die_with_parent()
