"""A model spec (loader plug-in, name, weights, image size) made into a model on a device.

The loader comes from the plug-in the spec names (nfhm/core/plugins.py); embedding and training
both build their backbone here, so the network that embeds the images for the first k-means is
the one training starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from PIL import Image

from . import plugins
from .efficientnet_lite import IMAGENET, PREFIX as EFFICIENTNET_LITE_PREFIX, imagenet_weights_file

if TYPE_CHECKING:
    import torch

RANDOM_INIT_SEED = 0


class ModelSpec(TypedDict):
    loader: str  # "module:attribute", e.g. "nfhm.core.model:load"
    name: str  # "ViT-L/14@336px", "openclip:ViT-B-32", "pixels@28"
    weights: str | None
    image_size: int | None
    embedding_size: NotRequired[int | None]  # the embedding head's size; None: the model's own


@dataclass
class LoadedModel:
    key: str  # what it was built from (spec and weights file stamp)
    model: torch.nn.Module
    transform: Any
    device: torch.device
    image_size: int
    embedding_size: int


def _probe(model: torch.nn.Module, transform: Any, device: torch.device) -> tuple[int, int]:
    """(image size, embedding size), from the transform's output on a blank image and, when the
    model does not say, one forward pass."""
    import torch

    image = transform(Image.new("RGB", (224, 224)))
    embedding_size = getattr(model, "embedding_size", None)
    if embedding_size is None:
        with torch.inference_mode():
            embedding_size = model(image.unsqueeze(0).to(device)).shape[-1]
    return int(image.shape[-1]), int(embedding_size)


def weights_file(spec: ModelSpec) -> str | None:
    """The file the spec's weights are read from: `weights` itself, or for EfficientNet-Lite's
    ``imagenet`` the installed package's file (so its hash can key the embedding cache)."""
    weights = spec.get("weights")
    if weights == IMAGENET and spec["name"].startswith(EFFICIENTNET_LITE_PREFIX):
        try:
            return imagenet_weights_file(spec["name"])
        except (ImportError, ValueError):
            return None
    return weights


def build_model(spec: ModelSpec, device: torch.device) -> tuple[torch.nn.Module, Any, int, int]:
    """A new instance of the spec's model on `device`: (model, eval transform, embedding size, image size)."""
    import torch

    loader = plugins.resolve(spec["loader"])
    # Only the keywords that are set: UNICOM's own load(name, device, download_root) takes no others.
    extra = {k: spec.get(k) for k in ("weights", "image_size", "embedding_size") if spec.get(k) is not None}
    # A model without weights starts from a fixed random init: the network that embeds the
    # images for the first k-means is the one training starts from, in every process.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model, transform = loader(spec["name"], device=device, **extra)
    model = model.to(device).eval()  # UNICOM's loader ignores device and returns train mode
    image_size, embedding_size = _probe(model, transform, device)
    return model, transform, embedding_size, image_size
