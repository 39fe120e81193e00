"""nfhm from a notebook or script: load an encoder from any model source and embed images with
it, read a run's tables.

    import nfhm
    encoder = nfhm.load_encoder("runs/demo")            # or trained_model.pt, FP16-ViT-B-32.pt, a name
    vectors = encoder.embed(["a.jpg", "b.png"])          # (2, E) float32, as eval embeds them
    run = nfhm.read_run("runs/demo")
    run.evaluation                                        # one row per model x metric

The encoder is built and run by the worker's own functions (model_spec.build_model,
embedding.embed_dataset), so its vectors are the ones `embed.shard` writes for the same files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image, ImageOps

from .core.embedding import embed_dataset
from .core.images import BadImage, ImageDataset, UnreadableImage, to_rgb
from .core.model_spec import LoadedModel, build_model
from .core.precision import Precision
from .core.shards import l2_normalize
from .core.sources import resolve_model
from .core.table_files import read_table_file

if TYPE_CHECKING:
    import pandas as pd
    import torch

ImageInput = str | os.PathLike[str] | Image.Image


class _Images(ImageDataset):
    """Paths decoded as the worker decodes them; PIL images made upright 8-bit RGB the same way."""

    def __getitem__(self, index: int) -> tuple[int, Any]:
        item = self.paths[index]
        if not isinstance(item, Image.Image):
            return super().__getitem__(index)
        try:
            return index, self.transform(to_rgb(ImageOps.exif_transpose(item)))
        except UnreadableImage as e:
            return index, BadImage(str(e))


@dataclass
class Encoder:
    model: torch.nn.Module = field(repr=False)
    transform: Any = field(repr=False)  # the eval transform: PIL image -> (3, image_size, image_size) tensor
    identity: dict[str, Any]  # what was loaded (core/sources.py), JSON-safe
    embedding_size: int
    image_size: int
    precision: Literal["fp32", "bf16", "fp16"]
    _loaded: LoadedModel = field(repr=False)

    def embed(self, images: Sequence[ImageInput], *, batch_size: int = 64, normalize: bool = False) -> np.ndarray:
        """(n, embedding_size) float32 for image paths and/or PIL images, in order; rows L2-normalised
        when `normalize`. An unreadable file raises ValueError naming every such file and why."""
        if isinstance(images, (str, os.PathLike, Image.Image)):
            raise TypeError(f"embed takes a list of images; got one {type(images).__name__}: pass [it]")
        items = [i if isinstance(i, Image.Image) else os.fspath(i) for i in images]
        vectors, good, reasons = embed_dataset(self._loaded, _Images(items, self.transform), batch_size, 0, self.precision)
        if not good.all():
            named = [i if isinstance(i, str) else f"images[{n}] (a PIL image)" for n, i in enumerate(items)]
            bad = "; ".join(f"{named[i]}: {reason}" for i, reason in sorted(reasons.items()))
            raise ValueError(f"{len(reasons)} of {len(items)} images cannot be read: {bad}")
        return l2_normalize(vectors) if normalize else vectors


def load_encoder(
    source: str | os.PathLike[str],
    *,
    device: str = "cpu",
    precision: Literal["fp32", "bf16", "fp16"] = "fp32",
) -> Encoder:
    """The encoder of `source`: a run directory (its last trained round), an nfhm trained_model.pt,
    a UNICOM release file or a model name (core/sources.py)."""
    import torch

    where = torch.device(device)
    Precision.from_name(precision, where)  # an unknown name fails now, not at the first embed
    resolved = resolve_model(source)
    model, transform, embedding_size, image_size = build_model(resolved.spec, where)
    loaded = LoadedModel(json.dumps(resolved.spec, sort_keys=True), model, transform, where, image_size, embedding_size)
    # The sizes the built model reports, which a plug-in loader's spec may leave open.
    identity = {**resolved.identity, "embedding_size": embedding_size, "image_size": image_size}
    return Encoder(model, transform, identity, embedding_size, image_size, precision, loaded)


@dataclass
class Run:
    """A run directory's tables as pandas DataFrames (docs/architecture.md, "Run directory")."""

    directory: Path
    manifest: dict[str, Any]
    images: pd.DataFrame  # images.arrow: id, path, label, class, split
    metrics: pd.DataFrame  # metrics.jsonl: one row per training step
    evaluation: pd.DataFrame  # eval.json: model, metric, value, low, high

    def pseudo_labels(self, round: int) -> pd.DataFrame:
        """round-<round>/cluster/pseudo_labels.arrow: id, cluster, distance."""
        path = self.directory / f"round-{round}" / "cluster" / "pseudo_labels.arrow"
        if not path.is_file():
            rounds = sorted(p.parent.parent.name for p in self.directory.glob("round-*/cluster/pseudo_labels.arrow"))
            raise ValueError(f"{path}: no such file (pseudo-labels here: {', '.join(rounds) or 'none'})")
        return read_table_file(str(path)).to_pandas()


def _evaluation_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """eval.json flattened: retrieval metrics and NMI with their 95% intervals, AMI, ARI and
    purity as plain values (low and high NaN)."""
    rows = []
    for entry in entries:
        clustering = {k: v for k, v in (entry.get("clustering") or {}).items() if k != "k"}
        for metric, value in {**entry["metrics"], **clustering}.items():
            interval = value if isinstance(value, dict) else {"estimate": value}
            rows.append(
                {
                    "model": entry["name"],
                    "metric": metric,
                    "value": interval["estimate"],
                    "low": interval.get("lower", np.nan),
                    "high": interval.get("upper", np.nan),
                }
            )
    return rows


def _steps(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's lines, as records.ts readMetrics reads them: a line cut short by a kill is left out."""
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line))
        except ValueError:
            continue  # blank, or cut short; the rewrite on resume drops it
    return steps


def read_run(run_dir: str | os.PathLike[str]) -> Run:
    """A run directory's manifest, image list, training steps and evaluation (empty tables for
    stages it has not reached)."""
    import pandas as pd

    directory = Path(run_dir).expanduser().resolve()
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"{directory}: not a run directory (no manifest.json)")
    images = directory / "images.arrow"
    metrics = directory / "metrics.jsonl"
    evaluation = directory / "eval.json"
    return Run(
        directory=directory,
        manifest=json.loads(manifest_path.read_text()),
        images=read_table_file(str(images)).to_pandas() if images.is_file() else pd.DataFrame(),
        metrics=pd.DataFrame(_steps(metrics)),
        evaluation=pd.DataFrame(
            _evaluation_rows(json.loads(evaluation.read_text())) if evaluation.is_file() else [],
            columns=["model", "metric", "value", "low", "high"],
        ),
    )
