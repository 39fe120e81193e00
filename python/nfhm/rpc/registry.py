"""The methods one worker serves, and `dispatch`, where every transport's requests end.

The built-in methods come from nfhm.methods. A module named in NFHM_WORKER_EXTENSIONS
(comma-separated, importable from PYTHONPATH) adds its own, declared as nfhm/methods/handler.py
describes; test/fixtures/python/nfhm_conformance.py is one:

    def sleep(state, tables, *, seconds: float) -> dict:
        time.sleep(seconds)
        return {"slept": seconds}

    METHODS = {"conf.sleep": sleep}
    COLLECTIVE = frozenset()  # names every torchrun rank runs; optional

A call of a method that contract.json declares is checked against it before the handler runs
(params, input tables) and after (result, output tables); extension methods it does not declare
reach their handler unchecked. `hello` lists both kinds and the contract's hash, so the
orchestrator can compare them with its own. A TCP worker's registry also holds each call's paths
and plug-ins to what the worker was started with (confinement.py), before the handler runs.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import pyarrow as pa

from .. import __version__
from ..core.contract import Contract, contract as current_contract
from ..core.user_input import is_users_input
from ..core.world import world
from ..methods import BUILT_IN
from ..methods.handler import Handler, Reply, Result, Tables, gather
from ..methods.state import WorkerState
from .confinement import Confinement
from .validation import ContractViolation, Validators

EXTENSIONS_ENV = "NFHM_WORKER_EXTENSIONS"
Dispatch = Callable[[WorkerState, str, dict[str, Any], Tables], tuple[dict[str, Any], Tables]]


def error_reply(exc: BaseException) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)),
            "bad_input": is_users_input(exc),
        },
    }


def echo(state: WorkerState, tables: Tables, **params: Any) -> Reply:
    """Returns what it was given: the bridge's own round-trip check."""
    return params, tables


class Registry:
    def __init__(
        self,
        extensions: Sequence[ModuleType] = (),
        contract: Contract | None = None,
        confinement: Confinement | None = None,
    ) -> None:
        self.contract = contract or current_contract()
        self.confinement = confinement
        self.validators = Validators(self.contract)
        self.built_in: dict[str, Handler] = {"hello": self.hello, "echo": echo, **BUILT_IN.handlers}
        added = gather(extensions)
        clash = sorted(added.handlers.keys() & self.built_in.keys())
        if clash:
            raise ValueError(f"worker extensions redefine built-in methods: {clash}")
        self.extensions = added.handlers
        self.handlers = {**self.built_in, **self.extensions}
        self.collective = BUILT_IN.collective | added.collective

    @classmethod
    def from_environment(cls, confinement: Confinement | None = None) -> Registry:
        """The built-in methods and those of the modules named in NFHM_WORKER_EXTENSIONS."""
        names = [name.strip() for name in os.environ.get(EXTENSIONS_ENV, "").split(",") if name.strip()]
        return cls([importlib.import_module(name) for name in names], confinement=confinement)

    def dispatch(
        self, state: WorkerState, name: str, params: dict[str, Any], tables: Tables, *, check_result: bool = True
    ) -> tuple[dict[str, Any], Tables]:
        """Runs one method; a Python exception becomes an error reply, never a crash.
        `check_result=False` for results nobody reads (a torchrun follower's)."""
        handler = self.handlers.get(name)
        if handler is None:
            return error_reply(KeyError(f"unknown worker method {name!r}; known: {sorted(self.handlers)}")), {}
        declared = self.contract.methods.get(name)
        try:
            if not isinstance(params, dict):
                raise ContractViolation(f"{name}: params must be a JSON object, got {type(params).__name__}")
            if declared is not None:
                self.validators.check_params(name, params)
                self._check_tables(name, "in", declared.tables_in, tables)
                if self.confinement is not None:
                    self.confinement.check(self.contract, name, params, tables)
            out = handler(state, tables, **params)
            result, out_tables = out if isinstance(out, tuple) else (out, {})
            if declared is not None and check_result:
                self.validators.check_result(name, result)
                self._check_tables(name, "out", declared.tables_out, out_tables)
        except Exception as e:  # noqa: BLE001 - the caller gets the traceback
            return error_reply(e), {}
        return {"ok": True, "result": result}, out_tables

    def _check_tables(self, method: str, direction: str, layouts: dict[str, str], tables: Tables) -> None:
        for table, layout in layouts.items():
            if table not in tables:
                raise ContractViolation(f"{method}: no {direction}put table `{table}` (layout {layout})")
            self.contract.check_table(tables[table], layout, f"{method}: table `{table}`")

    def hello(self, state: WorkerState, tables: Tables) -> Result:
        import faiss
        import numpy
        import torch

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
            "methods": sorted(self.built_in),
            "extensions": sorted(self.extensions),
            "contract_sha256": self.contract.sha256,
            "world_size": world().size,
        }


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
