"""Plug-ins chosen by import path, ``"module:attribute"``, so UNICOM's own files can be used
unchanged from a checkout on PYTHONPATH (e.g. ``"unicom:load"``, ``"partial_fc:PartialFC_V2"``).

What nfhm expects of each plug-in (nfhm's defaults in ``DEFAULT_SPECS`` fit all three):

* ``backbone`` -- a loader called as ``loader(name, device=device, **extra)`` returning
  ``(model, transform)``: ``model(images (B, 3, H, W)) -> embeddings (B, E)``, not normalised;
  ``transform(PIL image) -> tensor (3, H, W)``. ``extra`` holds the loader's own keywords from
  the config: nfhm's ``load`` takes ``weights`` and ``image_size``; UNICOM's
  ``load(name, device="cpu", download_root=None)`` takes ``download_root`` (where its
  ``FP16-ViT-*.pt`` files already lie: nothing can be downloaded here). UNICOM's loader
  ignores ``device`` and returns fp32 in train mode; its blocks force fp16 autocast on CUDA.
* ``head`` -- a class called as ``head_cls(margin_loss, embedding_size, num_classes,
  sample_rate=..., sample_num_feat=...)``, an ``nn.Module`` whose ``forward(embeddings (B, E),
  labels (B,) int64) -> scalar loss`` and whose ``weight`` holds the class centres. UNICOM's
  ``PartialFC_V2`` fits this signature but needs an initialised process group (even for one
  process), CUDA, int64 labels and the same batch size on every call (``drop_last=True``).
* ``margin_loss`` -- a class called as ``loss_cls(s, m1, m2, m3, interclass_filtering_threshold)``
  whose instances map (cosine logits (N, C), labels (N, 1) with -1 = other shard) to scaled
  logits. UNICOM's ``CombinedMarginLoss`` fits; it supports ArcFace (m1 = 1, m3 = 0) and
  CosFace (m3 > 0) only, and applies the angular margin straight-through.
"""

from __future__ import annotations

import importlib
from typing import Any

DEFAULT_SPECS: dict[str, str] = {
    "backbone": "nfhm.core.model:load",
    "head": "nfhm.core.partial_fc:PartialFC_V2",
    "margin_loss": "nfhm.core.losses:CombinedMarginLoss",
}


class PluginError(ImportError):
    """A plug-in spec is malformed, or its module or attribute cannot be found."""


def resolve(spec: str) -> Any:
    """Import ``module:attribute`` (the attribute may be dotted) and return the object."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(f"plug-in spec {spec!r} must look like 'package.module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or the module itself failing while it imports
        raise PluginError(f"plug-in {spec!r}: cannot import module {module_name!r}: {err!r}") from err
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PluginError(f"plug-in {spec!r}: module {module_name!r} has no attribute {attribute!r}") from None
    return target
