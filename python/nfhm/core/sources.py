"""Any model source a user names, made into a model spec: a run directory, an nfhm
``trained_model.pt``, a UNICOM release file, or a model name.

The spec has exactly the fields of the config's ``model`` section (what ``embed.shard`` and
``model.describe`` take and ``model_spec.build_model`` builds); the identity says what was
loaded, for an embedding file's metadata or a notebook's record. Nothing is downloaded: a
UNICOM name needs its release file on disk, and the error says where to put it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .checkpoint import CheckpointError, read_state_dict
from .digest import sha256_if_file
from .efficientnet_lite import DEFAULT_EMBEDDING_SIZE, IMAGENET, VARIANTS
from .export import CARD_FORMAT, sibling
from .model import CONFIGS
from .model_spec import ModelSpec, weights_file
from .plugins import DEFAULT_SPECS

SourceKind = Literal["run", "trained", "unicom", "name"]

TRAINED_MODEL = "trained_model.pt"
# UNICOM's released checkpoints, by model name (deepglint/unicom's file names).
UNICOM_FILES = {
    "ViT-B/32": "FP16-ViT-B-32.pt",
    "ViT-B/16": "FP16-ViT-B-16.pt",
    "ViT-L/14": "FP16-ViT-L-14.pt",
    "ViT-L/14@336px": "FP16-ViT-L-14-336px.pt",
}
MODELS_DIR_ENV = "NFHM_MODELS_DIR"
UNICOM_DOWNLOAD_ROOT = "~/.cache/unicom"  # UNICOM's own load(download_root=None) saves there
ACCEPTED = (
    "nfhm takes a run directory (with manifest.json), an nfhm trained_model.pt, a UNICOM release file "
    f"(FP16-ViT-*.pt) or a model name ({', '.join([*CONFIGS, *VARIANTS])})"
)
_ROUND_DIR = re.compile(r"round-(\d+)")
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.")


class ModelSourceError(ValueError):
    """A model source nfhm cannot resolve; the message names it and says what would work."""

    bad_input = True  # the user's file or name, not a fault of nfhm


@dataclass(frozen=True)
class ModelSource:
    kind: SourceKind
    spec: ModelSpec
    identity: dict[str, Any]  # JSON-safe: what was loaded, from where


def resolve_model(source: str | os.PathLike[str]) -> ModelSource:
    """The model spec and identity of `source` (see the module docstring for what is accepted)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_run(path.resolve())
    if path.is_file():
        path = path.resolve()
        if _card_of(path).is_file() or path.name == TRAINED_MODEL:
            return _from_trained(path)
        return _from_unicom_file(path)
    name = os.fspath(source)
    if name in CONFIGS or name in VARIANTS:
        return _from_name(name)
    raise ModelSourceError(f"{name}: no such file or directory, and not a model name nfhm knows; {ACCEPTED}")


def _card_of(weights: Path) -> Path:
    """The model card train.export writes beside a trained model: trained_model.json."""
    return Path(sibling(str(weights), ".json"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelSourceError(f"{path}: cannot read it as JSON: {e}") from None


def _spec(model: dict[str, Any], weights: str | None) -> ModelSpec:
    """Exactly the config's `model` fields; runs from before embedding_size existed have none."""
    return {
        "name": model["name"],
        "weights": weights,
        "loader": model.get("loader", DEFAULT_SPECS["backbone"]),
        "image_size": model.get("image_size"),
        "embedding_size": model.get("embedding_size"),
    }


def _run_model(run_dir: Path) -> dict[str, Any]:
    manifest = run_dir / "manifest.json"
    config = _read_json(manifest).get("config", {})
    if "model" not in config:
        raise ModelSourceError(f"{manifest}: holds no config.model (not an nfhm run's manifest?)")
    return config


def _from_run(run_dir: Path) -> ModelSource:
    if (run_dir / "sweep.json").is_file():
        raise ModelSourceError(f"{run_dir} is a sweep: pass one of its runs, e.g. {run_dir / 'k-<K>' / 'seed-<s>'}")
    if not (run_dir / "manifest.json").is_file():
        raise ModelSourceError(f"{run_dir}: a folder without manifest.json is not a run directory; {ACCEPTED}")
    config = _run_model(run_dir)
    # The last trained round, found as compare.ts's trainedModelOf finds it: the file beside
    # train.json (so a moved run still works), else the path train.json records.
    for round_ in range(int(config.get("rounds", 1)), 0, -1):
        summary = run_dir / f"round-{round_}" / "train" / "train.json"
        if not summary.is_file():
            continue
        recorded = Path(_read_json(summary)["model"])
        beside = summary.parent / recorded.name
        weights = beside if beside.is_file() else recorded
        if not weights.is_file():
            raise ModelSourceError(f"{run_dir}: round {round_}'s trained model {weights} does not exist")
        return _source("run", _spec(config["model"], str(weights)), str(run_dir), run_dir, round_)
    raise ModelSourceError(f"{run_dir}: holds no trained model (no round-*/train/train.json): train it first")


def _run_of(weights: Path) -> tuple[Path, int] | None:
    """(run directory, round) of a trained model at <run>/round-<r>/train/, when it lies there."""
    train, round_dir = weights.parent, weights.parent.parent
    match = _ROUND_DIR.fullmatch(round_dir.name)
    if train.name != "train" or not match or not (round_dir.parent / "manifest.json").is_file():
        return None
    return round_dir.parent, int(match.group(1))


def _from_trained(path: Path) -> ModelSource:
    card, run = _card_of(path), _run_of(path)
    run_dir, round_ = run if run else (None, None)
    if card.is_file():
        content = _read_json(card)
        if not isinstance(content, dict) or content.get("format") != CARD_FORMAT or "model" not in content:
            raise ModelSourceError(f"{card}: not an nfhm model card (expected format {CARD_FORMAT!r} and a model)")
        model = content["model"]
    elif run_dir is not None:
        model = _run_model(run_dir)["model"]
    else:
        raise ModelSourceError(
            f"{path}: an nfhm trained model without its model card ({card.name} beside it) or its run "
            "directory (manifest.json two folders up), so nothing says which model it is; "
            "copy the card with it, or pass the run directory"
        )
    return _source("trained", _spec(model, str(path)), str(path), run_dir, round_)


def unicom_shape(state: dict[str, Any]) -> dict[str, int] | None:
    """Width, blocks, patch size, patches and embedding size of a state dict in UNICOM's key
    layout (tensor shapes only, so meta tensors do); None when it is not in that layout."""
    needed = ("pos_embed", "patch_embed.proj.weight", "feature.2.weight")
    if not all(k in state and hasattr(state[k], "shape") for k in needed) or len(state["pos_embed"].shape) != 3:
        return None
    return {
        "width": int(state["pos_embed"].shape[2]),
        "blocks": len({m.group(1) for k in state if (m := _BLOCK_KEY.match(k))}),
        "patch": int(state["patch_embed.proj.weight"].shape[-1]),
        "patches": int(state["pos_embed"].shape[1]),
        "embedding": int(state["feature.2.weight"].shape[0]),
    }


def unicom_name(shape: dict[str, int]) -> str | None:
    """The named UNICOM-family model with this shape, or None."""
    for name, c in CONFIGS.items():
        own = {
            "width": c.width,
            "blocks": c.depth,
            "patch": c.patch_size,
            "patches": (c.image_size // c.patch_size) ** 2,
            "embedding": c.embedding_size,
        }
        if own == shape:
            return name
    return None


def _from_unicom_file(path: Path) -> ModelSource:
    try:
        state = read_state_dict(path)
    except CheckpointError as e:
        raise ModelSourceError(f"{e}; {ACCEPTED}") from None
    shape = unicom_shape(state)
    if shape is None:
        raise ModelSourceError(
            f"{path}: a state dict of no model nfhm knows (not UNICOM's key layout: no pos_embed, "
            f"patch_embed.proj.weight and feature.2.weight); an nfhm trained model needs its "
            f"{TRAINED_MODEL} name or model card; {ACCEPTED}"
        )
    name = unicom_name(shape)
    if name is None:
        raise ModelSourceError(
            f"{path}: width {shape['width']}, {shape['blocks']} blocks, {shape['patches']} patches of "
            f"{shape['patch']} px, embedding {shape['embedding']}: no UNICOM model has this shape "
            f"(known: {', '.join(CONFIGS)})"
        )
    spec = _spec({"name": name}, str(path))
    return _source("unicom", spec, str(path), None, None)


def unicom_file_places(name: str) -> list[Path]:
    """Where a UNICOM name's release file is looked for: $NFHM_MODELS_DIR, then UNICOM's download root."""
    folders = [os.environ[MODELS_DIR_ENV]] if os.environ.get(MODELS_DIR_ENV) else []
    return [Path(folder).expanduser() / UNICOM_FILES[name] for folder in [*folders, UNICOM_DOWNLOAD_ROOT]]


def _from_name(name: str) -> ModelSource:
    if name in VARIANTS:
        return _source("name", _spec({"name": name}, IMAGENET), name, None, None)
    if name not in UNICOM_FILES:
        # nfhm's CPU-sized ViTs have no release: the name means the fixed random init, as for
        # a config's model.weights: null (the "random init" baseline).
        return _source("name", _spec({"name": name}, None), name, None, None)
    places = unicom_file_places(name)
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        raise ModelSourceError(
            f"{name}: needs UNICOM's release file {UNICOM_FILES[name]}, found in none of "
            f"{', '.join(str(p.parent) for p in places)}: put it in one of them (${MODELS_DIR_ENV} names "
            "your own models folder) or pass the file's path; nfhm downloads nothing"
        )
    return _source("name", _spec({"name": name}, str(found.resolve())), name, None, None)


def _sizes(spec: ModelSpec) -> tuple[int | None, int | None]:
    """(image size, embedding size) of nfhm's own families from their tables; a plug-in loader's
    are known only when the spec sets them."""
    name, image_size, embedding_size = spec["name"], spec.get("image_size"), spec.get("embedding_size")
    if spec["loader"] == DEFAULT_SPECS["backbone"] and name in CONFIGS:
        return image_size or CONFIGS[name].image_size, CONFIGS[name].embedding_size
    if spec["loader"] == DEFAULT_SPECS["backbone"] and name in VARIANTS:
        return image_size or VARIANTS[name].image_size, embedding_size or DEFAULT_EMBEDDING_SIZE
    return image_size, embedding_size


def _source(
    kind: SourceKind, spec: ModelSpec, source: str, run_dir: Path | None, round_: int | None
) -> ModelSource:
    weights = weights_file(spec)
    image_size, embedding_size = _sizes(spec)
    identity = {
        "source": source,
        "kind": kind,
        "model": spec["name"],
        "weights": weights,
        "weights_sha256": sha256_if_file(weights),
        "embedding_size": embedding_size,
        "image_size": image_size,
        "run_dir": str(run_dir) if run_dir else None,
        "round": round_,
    }
    return ModelSource(kind, spec, identity)
