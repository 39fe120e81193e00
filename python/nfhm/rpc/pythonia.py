"""The pythonia transport's entry point: pythonia imports this module in its own child process
(src/bridge/pythonia.ts), which then lives as long as the orchestrator does.

Requests and replies cross as one JSON string each (nfhm/rpc/wire.py); tables cross as Arrow
IPC files in a scratch folder the orchestrator names (NFHM_SCRATCH), never as pythonia values.
"""

from __future__ import annotations

import os
import uuid

from ..core.lifetime import die_with_parent
from ..core.table_files import read_table_file, write_table_file
from ..methods.state import WorkerState
from . import wire
from .registry import Registry, error_reply

die_with_parent()
_registry = Registry.from_environment()
_state = WorkerState()


def pythonia_call(request_json: str) -> str:
    try:
        request = wire.loads(request_json)
        tables = {name: read_table_file(path) for name, path in request.get("tables", {}).items()}
        reply, out_tables = _registry.dispatch(_state, request["method"], request.get("params", {}), tables)
        if out_tables:
            scratch = os.environ["NFHM_SCRATCH"]
            paths = {}
            for name, table in out_tables.items():
                paths[name] = os.path.join(scratch, f"{uuid.uuid4().hex}.arrow")
                write_table_file(paths[name], table)
            reply["tables"] = paths
        return wire.dumps(reply)
    except Exception as e:  # noqa: BLE001 - a reply that cannot be encoded is still an answer
        return wire.dumps(error_reply(e))
