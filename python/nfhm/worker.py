"""The RPC surface of the Python worker.

Every operation is a method registered with `@method(name)`: it takes the
worker, a JSON-able `params` dict and named Arrow tables, and returns a
JSON-able result (optionally with tables). Transports (pythonia here, sockets
in serve.py) only move requests and replies; they all end in `dispatch`.
Modules named in NFHM_WORKER_EXTENSIONS (comma-separated) are imported at
start-up and may register more methods.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from . import __version__, protocol

Tables = dict[str, pa.Table]
Reply = dict[str, Any] | tuple[dict[str, Any], Tables]
Handler = Callable[["Worker", dict[str, Any], Tables], Reply]

METHODS: dict[str, Handler] = {}
# Methods every rank of a distributed worker runs (see distributed.py); the rest run on rank 0.
COLLECTIVE: set[str] = set()


def method(name: str, *, collective: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if name in METHODS:
            raise ValueError(f"worker method {name!r} is registered twice")
        METHODS[name] = fn
        if collective:
            COLLECTIVE.add(name)
        return fn

    return register


class Worker:
    """State that lives across calls (loaded models, open training sessions)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}


def error_reply(exc: BaseException) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        },
    }


def dispatch(worker: Worker, name: str, params: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
    """Runs one method; a Python exception becomes an error reply, never a crash."""
    handler = METHODS.get(name)
    if handler is None:
        return error_reply(KeyError(f"unknown worker method {name!r}; known: {sorted(METHODS)}")), {}
    try:
        out = handler(worker, params, tables)
    except Exception as e:  # noqa: BLE001 - the caller gets the traceback
        return error_reply(e), {}
    result, out_tables = out if isinstance(out, tuple) else (out, {})
    return {"ok": True, "result": result}, out_tables


@method("hello")
def hello(worker: Worker, params: dict[str, Any], tables: Tables) -> Reply:
    import faiss
    import numpy
    import torch

    from . import distributed

    cuda = torch.cuda.is_available()
    return {
        "pid": os.getpid(),
        "versions": {
            "nfhm": __version__,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            "pyarrow": pa.__version__,
            "numpy": numpy.__version__,
        },
        "device": {
            "type": "cuda" if cuda else "cpu",
            "name": torch.cuda.get_device_name(0) if cuda else _cpu_name(),
            "count": torch.cuda.device_count() if cuda else 1,
        },
        "methods": sorted(METHODS),
        "world_size": distributed.world().size,
    }


@method("echo")
def echo(worker: Worker, params: dict[str, Any], tables: Tables) -> Reply:
    """Returns what it was given: the bridge's own round-trip check."""
    return params, tables


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def die_with_parent() -> None:
    """No worker outlives its orchestrator, even one killed with SIGKILL."""
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


def load_extensions() -> None:
    for name in filter(None, os.environ.get("NFHM_WORKER_EXTENSIONS", "").split(",")):
        importlib.import_module(name.strip())


# The built-in methods beyond hello/echo; imported here, once `method` exists, so they can use it.
from . import cluster, data, embed, files, search, train  # noqa: E402,F401  (registers their methods)

# --- the pythonia transport -------------------------------------------------
# pythonia imports this module in its own child process. Requests and replies
# cross as one JSON string each (see protocol.py); tables cross as Arrow IPC
# files in a scratch folder the orchestrator names, never as pythonia values.

_worker = Worker()


def pythonia_call(request_json: str) -> str:
    try:
        request = protocol.loads(request_json)
        tables = {name: protocol.read_table_file(path) for name, path in request.get("tables", {}).items()}
        reply, out_tables = dispatch(_worker, request["method"], request.get("params", {}), tables)
        if out_tables:
            scratch = os.environ["NFHM_SCRATCH"]
            paths = {}
            for name, table in out_tables.items():
                paths[name] = os.path.join(scratch, f"{uuid.uuid4().hex}.arrow")
                protocol.write_table_file(paths[name], table)
            reply["tables"] = paths
        return protocol.dumps(reply)
    except Exception as e:  # noqa: BLE001 - a reply that cannot be encoded is still an answer
        return protocol.dumps(error_reply(e))


if os.environ.get("NFHM_TRANSPORT") == "pythonia":
    die_with_parent()
    load_extensions()
