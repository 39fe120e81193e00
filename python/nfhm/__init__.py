"""nfhm's Python worker: the heavy compute behind the TypeScript orchestrator, and the notebook
API (`nfhm.load_encoder`, `nfhm.read_run`; nfhm/api.py)."""

from typing import Any

__version__ = "0.1.0"

_API = ("load_encoder", "read_run", "Encoder", "Run")


def __getattr__(name: str) -> Any:
    # Imported on first use only: the worker imports nfhm too, and api.py brings torch and pandas.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'nfhm' has no attribute {name!r}")
