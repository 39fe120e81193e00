"""What a worker method is, for the method modules here and for extensions.

A handler is called as ``handler(state, tables, **params)``: the worker's cross-call state
(nfhm/methods/state.py), the Arrow tables the request carried, by name, and the request's
params as keyword arguments, already checked against contract.json when it declares the method.
It returns a JSON-able result, or (result, tables).

A module of methods (built-in, or named in NFHM_WORKER_EXTENSIONS) exposes two plain tables:
``METHODS = {"area.name": handler, ...}`` and, optionally, ``COLLECTIVE = frozenset({...})``:
the names every rank of a torchrun worker runs (nfhm/rpc/torchrun.py). Nothing is registered
by importing; the RPC layer reads the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pyarrow as pa

Tables = dict[str, pa.Table]
Result = dict[str, Any]
Reply = Result | tuple[Result, Tables]
# Each handler has its own keyword-only params, so no narrower callable type fits them all.
Handler = Callable[..., Reply]


@dataclass(frozen=True)
class MethodTable:
    handlers: dict[str, Handler]
    collective: frozenset[str]


def gather(modules: Iterable[ModuleType]) -> MethodTable:
    """The methods of `modules` (each with METHODS and optionally COLLECTIVE), every name once."""
    handlers: dict[str, Handler] = {}
    collective: set[str] = set()
    for module in modules:
        table = getattr(module, "METHODS", None)
        if not isinstance(table, dict):
            raise TypeError(f"{module.__name__} has no METHODS table (a dict of method name -> handler)")
        for name, handler in table.items():
            if name in handlers:
                raise ValueError(f"worker method {name!r} is defined twice (again in {module.__name__})")
            handlers[name] = handler
        names = frozenset(getattr(module, "COLLECTIVE", ()))
        if not names <= table.keys():
            raise ValueError(f"{module.__name__}: COLLECTIVE names methods it does not define: {sorted(names - table.keys())}")
        collective |= names
    return MethodTable(handlers, frozenset(collective))
