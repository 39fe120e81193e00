"""Files beside a trained_model.pt that other tools load: a safetensors copy of its state dict,
an ONNX export of the encoder checked against torch with ONNX Runtime, and the model card
(trained_model.json) that says what goes in and what comes out.

Everything is made from the .pt file and the model spec it was trained under, so the exports are
of the model a user gets by loading that file, and a run made before the exports existed can
have them written afterwards. An ONNX export that fails or misses parity is a warning, not an
error: the .pt stays the reference.

The ONNX export uses torch's TorchScript-based exporter (``dynamo=False``): on the tiny ViT-T it
took ~1 s against ~6.5 s for the dynamo exporter, on EfficientNet-Lite0 ~3.7 s against ~20 s (2
shared CPU cores), with the same parity; it writes one self-contained file where the dynamo
exporter puts the weights in a second ``.onnx.data`` file by default; and it needs no
onnxscript. docs/use.md ("Model files") has the measurements.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, TypedDict

import torch

from .atomic import NoRoomError, atomic_path
from .checkpoint import load_strict, read_state_dict
from .digest import sha256_file
from .model_spec import ModelSpec, build_model

CARD_FORMAT = "nfhm-model-card/1"
# LayerNormalization is a single op from opset 17 on; ONNX Runtime has run 17 since 1.12.
ONNX_OPSET = 17
ONNX_INPUT, ONNX_OUTPUT = "images", "embedding"
# The bar for ONNX Runtime against torch, in absolute terms on the embedding.
PARITY_TOLERANCE = 1e-4
# Traced at one batch size and checked at another: the check also shows the batch dimension is free.
TRACE_BATCH, PARITY_BATCH = 2, 3
PARITY_SEED = 0


class ExportFormats(TypedDict):
    """The config's train.export: which files to write beside trained_model.pt."""

    safetensors: bool
    onnx: bool


class Training(TypedDict):
    round: int
    step: int
    classes: int


class OnnxParity(TypedDict):
    opset: int
    batch: int
    max_abs_diff: float  # ONNX Runtime vs torch, over the embedding's entries
    max_abs_output: float  # the largest |entry| of torch's embedding, the scale of the difference
    seconds: float  # export and check


@dataclass
class Exports:
    """What was written: paths (None where not written), the ONNX check, and what went wrong."""

    card: str
    safetensors: str | None = None
    onnx: str | None = None
    onnx_parity: OnnxParity | None = None
    warnings: list[str] = field(default_factory=list)


def sibling(model_path: str, suffix: str) -> str:
    """trained_model.pt -> trained_model<suffix>, in the same folder."""
    return os.path.splitext(model_path)[0] + suffix


def write_safetensors(state: dict[str, torch.Tensor], model_path: str, path: str) -> None:
    """The .pt's state dict `state`, tensor for tensor, as safetensors."""
    from safetensors.torch import save_file  # only here: the worker's start stays cheap

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata={"format": "pt"})
        # safetensors creates its file readable by the owner only; the copy is as readable as the .pt.
        shutil.copymode(model_path, tmp)


def _onnx_session(path: str) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def write_onnx(model: torch.nn.Module, image_size: int, path: str) -> OnnxParity:
    """`model` (on the CPU, in eval mode) as ONNX: NCHW float32 normalised images -> embedding, any
    batch size. The file is checked with ONNX Runtime before it takes its name."""
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(PARITY_SEED)
    traced = torch.randn(TRACE_BATCH, 3, image_size, image_size, generator=generator)
    checked = torch.randn(PARITY_BATCH, 3, image_size, image_size, generator=generator)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            # The TorchScript exporter announces its deprecation on every call, and the tracer warns
            # of shapes taken as constants (the image size is fixed; the parity check below runs
            # another batch size than the trace's).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                (traced,),
                tmp,
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        with torch.inference_mode():
            expected = model(checked).float().numpy()
        (got,) = _onnx_session(tmp).run([ONNX_OUTPUT], {ONNX_INPUT: checked.numpy()})
    return {
        "opset": ONNX_OPSET,
        "batch": PARITY_BATCH,
        "max_abs_diff": float(abs(got - expected).max()),
        "max_abs_output": float(abs(expected).max()),
        "seconds": time.perf_counter() - started,
    }


def model_card(
    spec: ModelSpec,
    transform: Any,
    image_size: int,
    embedding_size: int,
    files: dict[str, dict[str, Any]],
    training: Training,
    problems: list[str],
) -> dict[str, Any]:
    """trained_model.json: the model spec to rebuild it, its input and output, its files."""
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    return {
        "format": CARD_FORMAT,
        "model": {k: v for k, v in spec.items() if k != "weights"},
        "input": {
            "height": image_size,
            "width": image_size,
            "channels": "RGB",
            "layout": "NCHW",
            "dtype": "float32",
            "scale": "pixels / 255",
            "mean": list(mean) if mean is not None else None,
            "std": list(std) if std is not None else None,
            "transform": repr(transform),
        },
        "output": {"embedding_size": embedding_size, "l2_normalised": False},
        "started_from": spec.get("weights"),
        "files": files,
        "training": dict(training),
        "warnings": problems,
    }


def _file_entry(path: str, **extra: Any) -> dict[str, Any]:
    # Paths relative to the card: the folder can move as a whole.
    return {"path": os.path.basename(path), "sha256": sha256_file(path), **extra}


def export_model(spec: ModelSpec, model_path: str, training: Training, formats: ExportFormats) -> Exports:
    """Writes the chosen exports beside `model_path` (trained under `spec`), then the card."""
    exports = Exports(card=sibling(model_path, ".json"))
    files = {"pytorch": _file_entry(model_path)}
    state = read_state_dict(model_path)
    if formats["safetensors"]:
        path = sibling(model_path, ".safetensors")
        try:
            write_safetensors(state, model_path, path)
            exports.safetensors = path
            files["safetensors"] = _file_entry(path)
        except NoRoomError:
            raise
        except Exception as e:
            exports.warnings.append(f"safetensors export failed ({type(e).__name__}: {e}); {model_path} stays the reference")
    # The spec's model with the .pt's weights, loaded strictly: built without them, because a
    # plug-in loader need not take a weights file (UNICOM's own does not).
    model, transform, embedding_size, image_size = build_model({**spec, "weights": None}, torch.device("cpu"))
    load_strict(model, state, model_path)
    if formats["onnx"]:
        path = sibling(model_path, ".onnx")
        try:
            parity = write_onnx(model, image_size, path)
        except NoRoomError:
            raise
        except Exception as e:
            # The exporter's messages run on for pages (an IR graph, links): their first line says it.
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            exports.warnings.append(f"ONNX export failed ({type(e).__name__}: {reason}); {model_path} stays the reference")
        else:
            exports.onnx, exports.onnx_parity = path, parity
            diff = parity["max_abs_diff"]
            files["onnx"] = _file_entry(path, opset=parity["opset"], max_abs_diff=diff if math.isfinite(diff) else None)
            if not parity["max_abs_diff"] <= PARITY_TOLERANCE:  # NaN misses it too
                exports.warnings.append(
                    f"{path}: ONNX Runtime's embeddings differ from torch's by up to {parity['max_abs_diff']:.3g} "
                    f"(> {PARITY_TOLERANCE:g}; largest |value| {parity['max_abs_output']:.3g}); "
                    f"{model_path} stays the reference"
                )
    card = model_card(spec, transform, image_size, embedding_size, files, training, exports.warnings)
    with atomic_path(exports.card) as tmp:
        with open(tmp, "w") as f:
            json.dump(card, f, indent=2)
            f.write("\n")
    return exports
