"""core/sources.py: every model source a user can name resolves to a spec the worker takes
(checked by `model.describe` against the contract and by building the model), and every bad
one is refused with the source in the message."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from nfhm.core.efficientnet_lite import imagenet_weights_file
from nfhm.core.export import export_model
from nfhm.core.model import CONFIGS, ViTConfig, VisionTransformer, create_model
from nfhm.core.sources import UNICOM_FILES, ModelSourceError, resolve_model, unicom_name, unicom_shape
from worker_calls import call

SPEC_FIELDS = {"name", "weights", "loader", "image_size", "embedding_size"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_state(model: torch.nn.Module, path: Path, half: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    return path


def write_json(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def run_config(rounds: int) -> dict:
    model = {"name": "ViT-T/4@28px", "weights": None, "loader": "nfhm.core.model:load", "image_size": None, "embedding_size": None}
    return {"config": {"model": model, "rounds": rounds}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of two rounds on disk: round 1 trained, round 2 trained (the last), as the recipe
    leaves them: trained_model.pt beside train.json, which records where it was written."""
    root = tmp_path_factory.mktemp("run") / "digits"
    write_json(root / "manifest.json", run_config(rounds=2))
    for round_ in (1, 2):
        train = root / f"round-{round_}" / "train"
        save_state(create_model("ViT-T/4@28px"), train / "trained_model.pt")
        # The path the worker recorded: another machine's, so only the file beside counts.
        write_json(train / "train.json", {"round": round_, "model": f"/elsewhere/round-{round_}/train/trained_model.pt"})
    return root


def check_with_worker(spec: dict, identity: dict) -> dict:
    """The spec is what the worker takes (contract-checked) and builds into the model the identity names."""
    assert set(spec) == SPEC_FIELDS
    described, _ = call("model.describe", {"model": spec})
    assert described["weights_sha256"] == identity["weights_sha256"]
    assert (described["embedding_size"], described["image_size"]) == (identity["embedding_size"], identity["image_size"])
    json.dumps(identity)  # JSON-safe
    return described


def test_a_run_directory_gives_its_last_trained_round(run_dir: Path) -> None:
    source = resolve_model(run_dir)
    weights = run_dir / "round-2" / "train" / "trained_model.pt"
    assert source.kind == "run"
    assert source.spec == {**run_config(2)["config"]["model"], "weights": str(weights)}
    assert source.identity == {
        "source": str(run_dir),
        "kind": "run",
        "model": "ViT-T/4@28px",
        "weights": str(weights),
        "weights_sha256": sha256(weights),
        "embedding_size": 32,
        "image_size": 28,
        "run_dir": str(run_dir),
        "round": 2,
    }
    check_with_worker(source.spec, source.identity)


def test_a_trained_model_in_its_run_takes_the_spec_from_the_manifest(run_dir: Path) -> None:
    weights = run_dir / "round-1" / "train" / "trained_model.pt"
    source = resolve_model(weights)
    assert source.kind == "trained"
    assert source.spec["weights"] == str(weights) and source.spec["name"] == "ViT-T/4@28px"
    assert (source.identity["run_dir"], source.identity["round"]) == (str(run_dir), 1)
    check_with_worker(source.spec, source.identity)


def test_a_trained_model_with_its_card_needs_no_run(tmp_path: Path) -> None:
    weights = save_state(create_model("ViT-S/4@28px"), tmp_path / "exported" / "trained_model.pt")
    trained_under = {"name": "ViT-S/4@28px", "weights": None, "loader": "nfhm.core.model:load", "image_size": 28, "embedding_size": 64}
    # The card as train.export writes it (only the card: no safetensors or ONNX copy needed here).
    export_model(trained_under, str(weights), {"round": 1, "step": 3, "classes": 10}, {"safetensors": False, "onnx": False})
    source = resolve_model(weights)
    assert source.kind == "trained"
    assert source.spec == {**trained_under, "weights": str(weights)}
    assert source.identity["run_dir"] is None and source.identity["weights_sha256"] == sha256(weights)
    check_with_worker(source.spec, source.identity)


@pytest.mark.parametrize("name", ["ViT-T/4@28px", "ViT-S/4@28px", "ViT-S/7@28px"])
def test_a_unicom_layout_file_is_recognised_by_its_shapes(tmp_path: Path, name: str) -> None:
    # Saved in fp16 as UNICOM releases its files; the name of the file says nothing.
    weights = save_state(create_model(name), tmp_path / "release.pt", half=True)
    source = resolve_model(weights)
    assert source.kind == "unicom"
    assert source.spec == {"name": name, "weights": str(weights), "loader": "nfhm.core.model:load", "image_size": None, "embedding_size": None}
    check_with_worker(source.spec, source.identity)


def test_every_named_vit_is_told_apart_by_its_shapes() -> None:
    # The released models' real state dicts, built without memory on the meta device.
    for name in CONFIGS:
        assert unicom_name(unicom_shape(create_model(name, device="meta").state_dict())) == name
    shape = unicom_shape(create_model("ViT-L/14@336px", device="meta").state_dict())
    assert shape == {"width": 1024, "blocks": 24, "patch": 14, "patches": 576, "embedding": 768}


def test_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lite = resolve_model("efficientnet-lite0")
    assert (lite.kind, lite.spec["weights"]) == ("name", "imagenet")
    assert lite.identity["weights_sha256"] == sha256(Path(imagenet_weights_file("efficientnet-lite0")))
    assert (lite.identity["embedding_size"], lite.identity["image_size"]) == (256, 224)

    small = resolve_model("ViT-S/7@28px")  # no release: the fixed random init
    assert small.spec["weights"] is None
    check_with_worker(small.spec, small.identity)

    # A UNICOM name finds its release file in $NFHM_MODELS_DIR.
    monkeypatch.setenv("NFHM_MODELS_DIR", str(tmp_path))
    release = tmp_path / UNICOM_FILES["ViT-B/32"]
    release.write_bytes(b"stands for the release file; a name's file is only found, not read")
    found = resolve_model("ViT-B/32")
    assert found.spec == {"name": "ViT-B/32", "weights": str(release), "loader": "nfhm.core.model:load", "image_size": None, "embedding_size": None}
    assert found.identity["weights_sha256"] == sha256(release)


def test_a_unicom_name_without_its_file_says_which_file_to_put_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NFHM_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ModelSourceError) as e:
        resolve_model("ViT-L/14@336px")
    message = str(e.value)
    assert "FP16-ViT-L-14-336px.pt" in message and str(tmp_path) in message
    assert str(tmp_path / "home" / ".cache" / "unicom") in message and "downloads nothing" in message


def bad(source: object) -> str:
    with pytest.raises(ValueError) as e:
        resolve_model(source)  # type: ignore[arg-type]
    return str(e.value)


def test_bad_sources_are_refused_naming_them(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pt"
    assert str(missing) in bad(missing) and "a run directory" in bad(missing)

    folder = tmp_path / "folder"
    folder.mkdir()
    assert str(folder) in bad(folder) and "manifest.json" in bad(folder)

    sweep = tmp_path / "digits-sweep"
    write_json(sweep / "sweep.json", {})
    assert bad(sweep) == f"{sweep} is a sweep: pass one of its runs, e.g. {sweep / 'k-<K>' / 'seed-<s>'}"

    untrained = tmp_path / "untrained"
    write_json(untrained / "manifest.json", run_config(rounds=1))
    assert f"{untrained}: holds no trained model" in bad(untrained)

    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    assert str(text) in bad(text)

    other = save_state(torch.nn.Linear(4, 2), tmp_path / "linear.pt")
    assert f"{other}: a state dict of no model nfhm knows" in bad(other)

    odd = save_state(VisionTransformer(ViTConfig(28, 4, 48, 2, 2, 32)), tmp_path / "odd.pt")
    assert bad(odd) == (
        f"{odd}: width 48, 2 blocks, 49 patches of 4 px, embedding 32: no UNICOM model has this shape "
        f"(known: {', '.join(CONFIGS)})"
    )

    lone = save_state(create_model("ViT-T/4@28px"), tmp_path / "lone" / "trained_model.pt")
    assert f"{lone}: an nfhm trained model without its model card (trained_model.json" in bad(lone)

    write_json(tmp_path / "lone" / "trained_model.json", {"format": "something-else/2", "model": {}})
    assert f"{tmp_path / 'lone' / 'trained_model.json'}: not an nfhm model card" in bad(lone)
