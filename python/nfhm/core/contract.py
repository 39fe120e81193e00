"""The worker contract: `contract.json`, generated from the zod schemas in src/bridge/methods.ts.

It holds each method's params and result as JSON Schema (the RPC layer validates calls with
them, nfhm/rpc/validation.py) and the column layouts of the Arrow tables both sides read
(`check_table`, used here in core because the methods read such files too). The file ships
with the package; NFHM_CONTRACT names another one (tests use it to change a schema).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pyarrow as pa

CONTRACT_ENV = "NFHM_CONTRACT"

JsonSchema = dict[str, Any]


class TableLayoutError(ValueError):
    """An Arrow table whose columns do not match the layout it is read as."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # "int32", "utf8", "fixed_size_list<float32>", ...
    required: bool  # False: the column may be absent
    worker_path: bool  # its values are paths on the worker's machine (nfhm/rpc/confinement.py)


@dataclass(frozen=True)
class MethodContract:
    params: JsonSchema
    result: JsonSchema
    tables_in: dict[str, str]  # table name -> layout name
    tables_out: dict[str, str]


@dataclass(frozen=True)
class Contract:
    source: str  # the file, for messages
    sha256: str  # the generator's hash of methods and layouts: both sides report it
    methods: dict[str, MethodContract]
    layouts: dict[str, tuple[Column, ...]]

    def check_table(self, table: pa.Table, layout: str, where: str) -> None:
        """Raises TableLayoutError unless `table` has the layout's columns with its types; extra
        columns are allowed. `where` names the file or the call the table came from."""
        columns = self.layouts.get(layout)
        if columns is None:
            raise KeyError(f"no table layout {layout!r} in {self.source}; known: {sorted(self.layouts)}")
        for column in columns:
            if column.name not in table.schema.names:
                if column.required:
                    raise TableLayoutError(
                        f'{where}: column "{column.name}" ({column.type}) is missing; '
                        f"found columns: {', '.join(table.schema.names)}"
                    )
                continue
            found = arrow_type_name(table.schema.field(column.name).type)
            if found != column.type:
                raise TableLayoutError(f'{where}: column "{column.name}" should be {column.type}, found {found}')


def arrow_type_name(t: pa.DataType) -> str:
    """The contract's name of an Arrow type (Arrow's own names, as the TS generator writes them)."""
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{arrow_type_name(t.value_type)}>"
    if pa.types.is_list(t):
        return f"list<{arrow_type_name(t.value_type)}>"
    if pa.types.is_string(t):
        return "utf8"
    if pa.types.is_large_string(t):
        return "large_utf8"
    if pa.types.is_floating(t):
        return f"float{t.bit_width}"
    return str(t)  # int32, uint8, bool, ...


def load_contract(path: str) -> Contract:
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    methods = {
        name: MethodContract(
            params=entry["params"],
            result=entry["result"],
            tables_in=entry.get("tables", {}).get("in", {}),
            tables_out=entry.get("tables", {}).get("out", {}),
        )
        for name, entry in raw["methods"].items()
    }
    layouts = {
        name: tuple(Column(c["name"], c["type"], c["required"], c["workerPath"]) for c in layout["columns"])
        for name, layout in raw["tables"].items()
    }
    return Contract(path, raw["sha256"], methods, layouts)


@functools.cache
def contract() -> Contract:
    """The contract this process runs under, read once."""
    path = os.environ.get(CONTRACT_ENV)
    if path:
        return load_contract(path)
    with resources.as_file(resources.files("nfhm") / "contract.json") as packaged:
        return load_contract(str(packaged))


def check_table(table: pa.Table, layout: str, where: str) -> None:
    """`Contract.check_table` against this process's contract."""
    contract().check_table(table, layout, where)
