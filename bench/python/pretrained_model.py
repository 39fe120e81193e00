"""The pretrained demo's encoder as a file that `nfhm embed --model` takes: bench/use-embed.ts and
bench/search.ts.

    python bench/python/pretrained_model.py '{"out": ".../trained_model.pt", "name": "efficientnet-lite0",
                                              "weights": "imagenet", "image_size": 64, "embedding_size": 256}'

Builds the spec's model as a run would start from it (ImageNet trunk, the embedding head from
nfhm's fixed seed), saves its state dict as `out` the way training saves trained_model.pt, and
writes the model card beside it with core/export.py (no safetensors or ONNX copies), so that
the .pt alone names its model. Prints {"model": out, "card": ...} as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from nfhm.core.atomic import atomic_path
from nfhm.core.export import export_model
from nfhm.core.model_spec import ModelSpec, build_model
from nfhm.core.plugins import DEFAULT_SPECS


def main() -> None:
    cfg = json.loads(sys.argv[1])
    spec: ModelSpec = {
        "loader": DEFAULT_SPECS["backbone"],
        "name": cfg["name"],
        "weights": cfg["weights"],
        "image_size": cfg["image_size"],
        "embedding_size": cfg["embedding_size"],
    }
    model, *_ = build_model(spec, torch.device("cpu"))
    os.makedirs(os.path.dirname(os.path.abspath(cfg["out"])), exist_ok=True)
    with atomic_path(cfg["out"]) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    # Not trained: the card's training record says so (round 0, no steps, no classes).
    exports = export_model(spec, cfg["out"], {"round": 0, "step": 0, "classes": 0}, {"safetensors": False, "onnx": False})
    print(json.dumps({"model": cfg["out"], "card": exports.card}))


if __name__ == "__main__":
    main()
