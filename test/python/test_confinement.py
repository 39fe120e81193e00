"""A TCP worker's confinement (nfhm/rpc/confinement.py), through dispatch as every call goes: paths
outside the allowed directories refused before the handler runs (symlinks and `..` resolved as
the kernel would), "imagenet" weights no path, plug-ins only from allowed modules and defined
there, and nothing confined with --allow-any-path or for a local worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from nfhm.methods.state import WorkerState
from nfhm.rpc.confinement import Confinement
from nfhm.rpc.registry import Registry

MODEL = {"loader": "nfhm.core.model:load", "name": "ViT-T/4@28px", "weights": None, "image_size": None, "embedding_size": None}


def reply(registry: Registry, method: str, params: dict[str, Any], tables: dict[str, pa.Table] | None = None) -> dict:
    answer, _ = registry.dispatch(WorkerState(), method, params, tables or {})
    return answer


def refusal(registry: Registry, method: str, params: dict[str, Any], tables: dict[str, pa.Table] | None = None) -> str:
    answer = reply(registry, method, params, tables)
    assert not answer["ok"] and answer["error"]["type"] == "PermissionError", answer
    return answer["error"]["message"]


def stat(paths: list[str]) -> dict[str, Any]:
    return {"paths": paths}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "link").symlink_to(outside)
    return allowed, outside


def confined(*allowed: Path, plugins: tuple[str, ...] = ()) -> Registry:
    return Registry(confinement=Confinement.of([str(d) for d in allowed], False, list(plugins)))


def test_paths_inside_run_and_paths_outside_are_refused_naming_both(dirs: tuple[Path, Path]) -> None:
    allowed, outside = dirs
    registry = confined(allowed)
    assert reply(registry, "files.stat", stat([str(allowed / "a"), str(allowed / "sub" / "b")]))["ok"]
    message = refusal(registry, "files.stat", stat([str(allowed / "a"), str(outside / "secret")]))
    assert message == (
        f"files.stat: params.paths[1]: {outside / 'secret'} lies outside the directories this worker may use: "
        f"{os.path.realpath(allowed)} (start it with --allow-dir DIR to add one, or --allow-any-path)"
    )


@pytest.mark.parametrize(
    "path",
    ["link/secret", "link/../outside/secret", "../outside/secret", "/etc/passwd", ""],
    ids=["a symlink out", "a symlink then ..", "..", "absolute", "the parent itself"],
)
def test_every_way_out_is_refused(dirs: tuple[Path, Path], path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    allowed, _ = dirs
    monkeypatch.chdir(allowed if path else allowed.parent)  # relative paths start from the worker's directory
    assert "lies outside the directories" in refusal(confined(allowed), "files.read_table", {"path": path})


def test_the_working_directory_is_the_default(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    allowed, outside = dirs
    monkeypatch.chdir(allowed)
    registry = Registry(confinement=Confinement.of(None, False, []))
    assert reply(registry, "files.stat", stat(["a", str(allowed / "b")]))["ok"]
    refusal(registry, "files.stat", stat([str(outside / "b")]))


def test_image_paths_in_tables_are_confined_too(dirs: tuple[Path, Path]) -> None:
    allowed, outside = dirs
    images = pa.table({"id": pa.array([0, 1], pa.int32()), "path": [str(allowed / "a.png"), str(outside / "b.png")]})
    message = refusal(confined(allowed), "data.check", {"loader_workers": 0}, {"images": images})
    assert message.startswith(f"data.check: table `images` row 1: {outside / 'b.png'} lies outside")


def test_writes_are_refused_before_the_method_runs(dirs: tuple[Path, Path]) -> None:
    allowed, outside = dirs
    target = outside / "mean.npy"
    refusal(confined(allowed), "embed.mean", {"shards": [str(allowed / "s.arrow")], "out": str(target)})
    refusal(confined(allowed), "cluster.kmeans", {
        "shards": [], "k": 1, "spherical": True, "niter": 1, "nredo": 1, "seed": 0,
        "max_points_per_centroid": 1, "min_points_per_centroid": 0, "gpu": None, "out_dir": str(outside / "c"),
    })  # fmt: skip
    assert list(outside.iterdir()) == []


def test_imagenet_weights_are_no_path_but_a_weights_file_is(dirs: tuple[Path, Path]) -> None:
    allowed, outside = dirs
    registry = confined(allowed)
    for weights in ("imagenet", str(allowed / "w.pt")):
        answer = reply(registry, "model.describe", {"model": {**MODEL, "weights": weights}})
        assert answer["ok"] or answer["error"]["type"] != "PermissionError", answer
    assert "params.model.weights" in refusal(registry, "model.describe", {"model": {**MODEL, "weights": str(outside / "w.pt")}})


@pytest.mark.parametrize(
    ("loader", "reason"),
    [
        ("os:system", "is not from a module this worker allows (nfhm, unicom); start it with --allow-plugin os"),
        ("nfhmx.model:load", "is not from a module this worker allows"),
        ("nfhm.core.model:os.system", "names an object of module 'posix'"),
        ("nfhm.core.model:torch.load", "names an object of module 'torch.serialization'"),
    ],
)
def test_plugins_come_from_nfhm_or_the_allowed_modules_and_are_defined_there(loader: str, reason: str, tmp_path: Path) -> None:
    message = refusal(confined(tmp_path, plugins=("unicom",)), "model.describe", {"model": {**MODEL, "loader": loader}})
    assert message.startswith(f"model.describe: params.model.loader: plug-in {loader!r} ") and reason in message


def test_an_allowed_plugin_module_and_its_submodules_pass(tmp_path: Path) -> None:
    registry = confined(tmp_path, plugins=("json",))
    for loader in ("json:dumps", "json.decoder:JSONDecoder"):
        answer = reply(registry, "model.describe", {"model": {**MODEL, "loader": loader}})
        assert answer["error"]["type"] == "TypeError", answer  # let through, then called with a loader's arguments
    refusal(registry, "model.describe", {"model": {**MODEL, "loader": "jsonschema:validate"}})


def test_allow_any_path_confines_no_path_but_still_the_plugins(dirs: tuple[Path, Path]) -> None:
    _, outside = dirs
    registry = Registry(confinement=Confinement.of(None, True, []))
    assert reply(registry, "files.stat", stat([str(outside / "secret")]))["ok"]
    refusal(registry, "model.describe", {"model": {**MODEL, "loader": "os:system"}})


def test_a_local_worker_is_not_confined(dirs: tuple[Path, Path]) -> None:
    _, outside = dirs
    assert reply(Registry(), "files.stat", stat([str(outside / "secret")]))["ok"]


def test_a_missing_allowed_directory_stops_the_server(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--allow-dir .*nope: no such directory"):
        Confinement.of([str(tmp_path / "nope")], False, [])
