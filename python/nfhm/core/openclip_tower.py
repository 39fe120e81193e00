"""OpenCLIP image towers as a second backbone family: ``load("openclip:<arch>", weights)``.

An optional extra: ``open_clip`` imports torchvision, which does not import beside the CPU
build of torch 2.13 this project pins, so it is imported only here, only when asked for.
``<arch>`` is any name ``open_clip.create_model`` knows (``ViT-B-32``, ``ViT-L-14``, or a
config registered with ``open_clip.add_model_config``). Weights come from a local file only:
a full CLIP state dict (``visual.*`` keys used, the text tower ignored) or the image tower's
own state dict (what nfhm saves after training it). Nothing is downloaded.
"""

from __future__ import annotations

import os
from types import ModuleType

import torch
from torch import nn

from .checkpoint import load_strict, read_state_dict
from .transforms import EvalTransform

_VISUAL = "visual."


def _import_open_clip() -> ModuleType:
    try:
        import open_clip
    except Exception as err:  # ImportError, or torchvision failing to register its operators
        raise ImportError(
            "OpenCLIP backbones need the optional open_clip package and a torchvision that "
            "imports beside your torch (e.g. torch==2.14.1 torchvision==0.29.1 open-clip-torch): "
            f"{err}"
        ) from err
    return open_clip


def load_openclip(
    arch: str,
    weights: str | os.PathLike[str] | None,
    device: torch.device | str = "cpu",
    image_size: int | None = None,
) -> tuple[nn.Module, EvalTransform]:
    """(image tower in fp32 eval mode, eval transform). ``weights=None`` keeps random init."""
    open_clip = _import_open_clip()
    clip = open_clip.create_model(arch, pretrained=None, force_image_size=image_size)
    tower = clip.visual
    if weights is not None:
        state = read_state_dict(weights)
        if not any(k.startswith(_VISUAL) for k in state):
            state = {_VISUAL + k: v for k, v in state.items()}
        visual_state = {k: v for k, v in state.items() if k.startswith(_VISUAL)}
        # open_clip's own helper resizes the position grid when image_size differs.
        open_clip.model.resize_pos_embed(visual_state, clip)
        load_strict(tower, {k[len(_VISUAL) :]: v for k, v in visual_state.items()}, weights)
    preprocess = tower.preprocess_cfg
    size = preprocess["size"] if isinstance(preprocess["size"], int) else preprocess["size"][0]
    transform = EvalTransform(int(size), tuple(preprocess["mean"]), tuple(preprocess["std"]))
    return tower.float().to(device).eval(), transform
