"""Reading flat state-dict files and loading them strictly, with errors that name the file.

Both backbone families (UNICOM ViTs and OpenCLIP towers) read their weights through here,
so every checkpoint problem a user can hit reads the same way: which file, and what is wrong.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

# BatchNorm's step counter: UNICOM release files may or may not store it, and it does not
# affect the forward pass, so it is the one key strict loading forgives.
TOLERATED_SUFFIX = "num_batches_tracked"


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, or does not fit the model it is loaded into."""

    bad_input = True  # the user's file (core/user_input.py)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``torch.save``-d flat ``{name: tensor}`` dict onto the CPU.

    Uses ``weights_only=True`` so a file holding arbitrary pickled objects (a whole
    ``nn.Module``, say) is refused instead of executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch reports both "pickles a class" and "garbage bytes" this way; the former
        # names the offending global, which is the useful part of its long message.
        offending = [line.strip() for line in str(err).splitlines() if "Unsupported global" in line]
        if offending:
            raise CheckpointError(
                f"{path}: not a plain state dict (save model.state_dict(), not the model "
                f"or other objects): {offending[0].split(' was not')[0]}"
            ) from err
        raise CheckpointError(f"{path}: cannot read checkpoint (corrupt?): {err}") from err
    except Exception as err:  # RuntimeError, EOFError, ... for truncated or damaged files
        raise CheckpointError(f"{path}: cannot read checkpoint (truncated or corrupt?): {err}") from err
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(f"{path}: not a flat state dict of name -> tensor (got {type(obj).__name__})")
    return dict(obj)


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike[str]) -> None:
    """Copy ``state`` into ``model``; every key must match by name and shape.

    Only ``*.num_batches_tracked`` may be missing. The error lists every missing,
    unexpected and mis-shaped key at once, so one run shows the whole mismatch.
    """
    check_keys(model.state_dict(), state, source)
    model.load_state_dict(state, strict=False)


def check_keys(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str | os.PathLike[str]
) -> None:
    """``load_strict``'s check of ``state`` against the ``expected`` names and shapes."""
    missing = [k for k in expected if k not in state and not k.endswith(TOLERATED_SUFFIX)]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or misshaped:
        lines = [f"{source}: checkpoint does not fit the model"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys))
        raise CheckpointError("\n".join(lines))
