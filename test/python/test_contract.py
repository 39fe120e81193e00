"""Calls held to contract.json (generated from src/bridge/methods.ts): params refused with the
method and the field's path, handlers called with typed keyword arguments, results and tables
checked, and the method lists both sides compare in `hello`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest

from nfhm.core.contract import TableLayoutError, contract, load_contract
from nfhm.methods.state import WorkerState
from nfhm.rpc.registry import Registry
from worker_calls import call, call_error


def edited_contract(tmp_path: Path, edit) -> Any:
    """The packaged contract with `edit` applied to its JSON, as NFHM_CONTRACT would name it."""
    raw = json.loads(Path(contract().source).read_text())
    edit(raw["methods"])
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(raw))
    return load_contract(str(path))


def extension(**methods: Any) -> ModuleType:
    module = ModuleType("test_extension")
    module.METHODS = methods
    return module


def test_a_wrong_type_is_refused_with_the_method_and_the_field(tmp_path: Path) -> None:
    params = {
        "model": {"loader": "nfhm.core.model:load", "name": "ViT-T/4@28px", "weights": None, "image_size": None, "embedding_size": None},
        "out": str(tmp_path / "shard.arrow"),
        "batch_size": "x",
        "loader_workers": 0,
        "precision": "fp32",
    }
    images = {"images": pa.table({"id": pa.array([1], pa.int32()), "path": ["a.png"]})}
    error = call_error("embed.shard", params, images)
    assert error["type"] == "ContractViolation"
    assert error["message"] == "embed.shard: params.batch_size: 'x' is not of type 'integer'"
    nested = call_error("train.steps", {"lr": [[1e-3, "fast"]], "beta1": [[0.9, 0.9]]})["message"]
    assert nested == "train.steps: params.lr[0][1]: 'fast' is not of type 'number'"
    assert call_error("files.stat", {})["message"] == "files.stat: params: 'paths' is a required property"
    assert not (tmp_path / "shard.arrow").exists()


def test_a_field_added_to_the_schema_is_checked_without_a_python_edit(tmp_path: Path) -> None:
    def add_follow(methods: dict[str, Any]) -> None:
        params = methods["files.stat"]["params"]
        params["properties"]["follow"] = {"type": "boolean"}
        params["required"].append("follow")

    registry = Registry(contract=edited_contract(tmp_path, add_follow))
    reply, _ = registry.dispatch(WorkerState(), "files.stat", {"paths": [], "follow": "yes"}, {})
    assert reply["error"]["message"] == "files.stat: params.follow: 'yes' is not of type 'boolean'"


def test_a_valid_call_reaches_the_handler_as_typed_keyword_arguments(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def count(state: WorkerState, tables: dict[str, pa.Table], *, paths: list[str], limit: int | None) -> dict[str, Any]:
        seen.update(paths=paths, limit=limit)
        return {"rows": len(paths)}

    def declare(methods: dict[str, Any]) -> None:
        methods["test.count"] = copy.deepcopy(methods["files.read_table"])
        methods["test.count"]["params"] = {
            "type": "object",
            "properties": {"paths": {"type": "array", "items": {"type": "string"}}, "limit": {"type": ["integer", "null"]}},
            "required": ["paths", "limit"],
            "additionalProperties": False,
        }

    registry = Registry([extension(**{"test.count": count})], edited_contract(tmp_path, declare))
    reply, _ = registry.dispatch(WorkerState(), "test.count", {"paths": ["a", "b"], "limit": None}, {})
    assert reply == {"ok": True, "result": {"rows": 2}}
    assert seen == {"paths": ["a", "b"], "limit": None}
    refused, _ = registry.dispatch(WorkerState(), "test.count", {"paths": ["a"], "limit": 1.5}, {})
    assert refused["error"]["message"] == "test.count: params.limit: 1.5 is not of type 'integer', 'null'"


def test_a_result_that_breaks_its_schema_fails_with_the_python_traceback(tmp_path: Path) -> None:
    def declare(methods: dict[str, Any]) -> None:
        methods["test.bad_result"] = copy.deepcopy(methods["files.read_table"])

    registry = Registry([extension(**{"test.bad_result": lambda state, tables, **params: {"rows": "many"}})], edited_contract(tmp_path, declare))
    reply, _ = registry.dispatch(WorkerState(), "test.bad_result", {"path": "x"}, {})
    assert reply["error"]["message"] == "test.bad_result: result.rows: 'many' is not of type 'integer'"
    assert "Traceback" in reply["error"]["traceback"]


def test_input_tables_are_checked_against_their_layout() -> None:
    floats = pa.table({"id": pa.array([1.0]), "path": ["a.png"]})
    message = call_error("data.check", {"loader_workers": 0}, {"images": floats})["message"]
    assert message == 'data.check: table `images`: column "id" should be int32, found float64'
    assert call_error("data.check", {"loader_workers": 0})["message"] == "data.check: no input table `images` (layout image_list)"


def test_check_table_names_the_place_the_column_and_both_types() -> None:
    shard = pa.table({"id": pa.array([1], pa.int32()), "embedding": pa.array([[1.0]], pa.list_(pa.float64(), 1))})
    with pytest.raises(TableLayoutError, match=r'^x\.arrow: column "embedding" should be fixed_size_list<float32>, found fixed_size_list<float64>$'):
        contract().check_table(shard, "embedding_shard", "x.arrow")
    contract().check_table(pa.table({"path": ["a.png"], "extra": [1]}), "scanned_images", "scan")  # optional columns may be absent


def test_extension_methods_are_not_held_to_the_contract_unless_it_declares_them() -> None:
    registry = Registry([extension(**{"test.free": lambda state, tables, **params: {"got": params}})])
    reply, _ = registry.dispatch(WorkerState(), "test.free", {"anything": [1, "two"]}, {})
    assert reply == {"ok": True, "result": {"got": {"anything": [1, "two"]}}}
    with pytest.raises(ValueError, match="redefine built-in methods: \\['files.stat'\\]"):
        Registry([extension(**{"files.stat": lambda state, tables: {}})])


def test_every_built_in_method_is_in_the_contract_and_hello_says_what_is_served() -> None:
    registry = Registry([extension(**{"test.free": lambda state, tables: {}})])
    assert sorted(registry.built_in) == sorted(contract().methods)
    hello, _ = call("hello", {})
    assert hello["methods"] == sorted(contract().methods)
    assert hello["extensions"] == []
    assert hello["contract_sha256"] == contract().sha256
    reply, _ = registry.dispatch(WorkerState(), "hello", {}, {})
    assert reply["result"]["extensions"] == ["test.free"]
