"""Partial fine-tuning (train.freeze) of the UNICOM ViTs and EfficientNet-Lite, the frozen part's
cache, and train.embedding_lr_scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image
from torch import nn

from nfhm.core import freeze as freezing
from nfhm.core.efficientnet_lite import INPUT_MEAN, EfficientNetLite
from nfhm.core.model import create_model
from nfhm.core.train_images import TrainImages
from nfhm.core.transforms import Augmentation, TrainTransform, to_normalized_tensor
from nfhm.methods.state import WorkerState
from synthetic_images import make_images
from worker_calls import call, call_error

LITE0 = "efficientnet-lite0"
VIT = "ViT-T/4@28px"
NO_AUGMENT = {"crop_scale": [1.0, 1.0], "hflip_prob": 0.0, "randaug_ops": 0, "randaug_magnitude": 5, "erasing_prob": 0.0}
AUGMENT = {"crop_scale": [0.6, 1.0], "hflip_prob": 0.5, "randaug_ops": 1, "randaug_magnitude": 5, "erasing_prob": 0.25}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch) -> None:
    """train.steps on the test's one torch thread: on 2 shared cores, the 2 threads that
    nfhm.core.threads would give it spin-wait for each other (a Lite step took 3 s instead of 0.1 s)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def lite_model() -> EfficientNetLite:
    """A random-init Lite0 at 32 px with BatchNorm statistics of its own, in eval mode."""
    torch.manual_seed(0)
    model = EfficientNetLite(LITE0, image_size=32, embedding_size=16).train()
    with torch.no_grad():
        model(torch.randn(16, 3, 32, 32))
    return model.eval()


def frozen_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize("family", ["lite", "vit"])
def test_forward_is_the_trained_part_after_the_frozen_part(family: str) -> None:
    model = lite_model() if family == "lite" else create_model(VIT).eval()
    size = 32 if family == "lite" else 28
    images = torch.randn(8, 3, size, size)
    for n in sorted({0, 1, model.num_blocks // 2, model.num_blocks}):
        model.freeze(n)
        for mode in (False, True):  # eval, then train: BatchNorm on batch statistics
            model.train(mode)
            with torch.no_grad():
                assert torch.equal(model(images), model.forward_trained(model.forward_frozen(images))), (n, mode)
    model.freeze(0)
    assert not frozen_names(model) and torch.equal(model.forward_frozen(images), images)


def test_freeze_fixes_the_stem_and_the_first_blocks_and_their_batchnorm() -> None:
    model = lite_model()
    model.freeze(3).train()
    frozen = frozen_names(model)
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith(("stem.", "blocks.0.", "blocks.1.", "blocks.2."))}
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.training == (not name.startswith(("stem.", "blocks.0.", "blocks.1.", "blocks.2."))), name
    vit = create_model(VIT)
    vit.freeze(1)
    assert frozen_names(vit) == {"pos_embed"} | {n for n, _ in vit.named_parameters() if n.startswith(("patch_embed.", "blocks.0."))}
    with pytest.raises(ValueError, match=r"freeze=3: expected a whole number of blocks in 0\.\.2"):
        vit.freeze(3)


def image_table(folder: Path, count: int, size: int) -> pa.Table:
    images, classes = make_images(count, size, seed=5)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(folder / f"{i:03d}.png"))
        image.save(paths[-1])
    return pa.table({"id": pa.array(np.arange(count), pa.int32()), "path": paths, "label": pa.array(classes % 4, pa.int32())})


def start_params(name: str, freeze: int, augment: dict[str, Any], **extra: Any) -> dict[str, Any]:
    lite = name.startswith("efficientnet")
    return {
        "model": {"loader": "nfhm.core.model:load", "name": name, "weights": None, "image_size": 32 if lite else None, "embedding_size": 16 if lite else None},
        "head": {"plugin": "nfhm.core.partial_fc:PartialFC_V2", "sample_rate": 1.0, "sample_num_feat": None},
        "margin": {"plugin": "nfhm.core.losses:CombinedMarginLoss", "s": 32, "m1": 1, "m2": 0.3, "m3": 0, "interclass_filtering_threshold": 0},
        "num_classes": 4,
        "batch_size": 16,
        "weight_decay": 0.0,
        "head_lr_scale": 5.0,
        "freeze": freeze,
        "embedding_lr_scale": 1.0,
        "precision": "fp32",
        "augment": augment,
        "seed": 3,
        "loader_workers": 0,
        "resume": None,
        **extra,
    }


def train(table: pa.Table, params: dict[str, Any], steps: int, lr: float = 1e-2) -> tuple[WorkerState, list[float]]:
    state = WorkerState()
    call("train.start", params, {"train": table}, state)
    schedule = {"lr": [[lr, 5 * lr]] * steps, "beta1": [[0.9, 0.9]] * steps}
    return state, call("train.steps", schedule, None, state)[0]["loss"]


@pytest.fixture(scope="module")
def table32(tmp_path_factory) -> pa.Table:
    return image_table(tmp_path_factory.mktemp("images"), 32, 32)


@pytest.mark.parametrize(("name", "freeze", "frozen_prefixes"), [(LITE0, 10, ("stem.",)), (VIT, 1, ("patch_embed.", "pos_embed"))])
def test_training_leaves_the_frozen_part_exactly_as_it_was(table32, name: str, freeze: int, frozen_prefixes: tuple[str, ...]) -> None:
    state = WorkerState()
    call("train.start", start_params(name, freeze, AUGMENT), {"train": table32}, state)
    model = state.session.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimised = {id(p) for group in state.session.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in model.parameters() if p.requires_grad} | {id(p) for p in state.session.head.parameters()}
    call("train.steps", {"lr": [[1e-2, 5e-2]] * 2, "beta1": [[0.9, 0.9]] * 2}, None, state)
    frozen = frozen_prefixes + tuple(f"blocks.{i}." for i in range(freeze))
    after = model.state_dict()
    for key, value in after.items():
        if key.startswith(frozen):  # weights and BatchNorm running statistics alike
            assert torch.equal(value, before[key]), key
        elif key.endswith(("weight", "running_mean")) and not key.startswith("feature.1"):
            assert not torch.equal(value, before[key]), key


def test_the_cached_frozen_part_gives_the_uncached_losses(table32, monkeypatch) -> None:
    loads = []
    original = TrainImages.__getitem__
    monkeypatch.setattr(TrainImages, "__getitem__", lambda self, key: loads.append(key[0]) or original(self, key))
    params = start_params(LITE0, 12, NO_AUGMENT)
    state, cached = train(table32, params, steps=4)  # 2 epochs of 2 steps
    assert state.session.cache is not None and bool(state.session.cache.filled.all())
    assert sorted(loads) == list(range(32))  # each image decoded and run through the frozen part once
    loads.clear()
    monkeypatch.setattr(freezing, "FROZEN_CACHE_BYTES", 0)
    state, uncached = train(table32, params, steps=4)
    assert state.session.cache is None and len(loads) == 4 * 16
    assert cached == uncached
    # augmentation on: never cached
    monkeypatch.setattr(freezing, "FROZEN_CACHE_BYTES", 2 << 30)
    call("train.start", start_params(LITE0, 8, AUGMENT), {"train": table32}, state)
    assert state.session.cache is None


def test_freeze_beyond_the_blocks_or_on_a_model_without_them_is_refused(table32) -> None:
    message = call_error("train.start", start_params(LITE0, 17, NO_AUGMENT), {"train": table32})["message"]
    assert "train.freeze=17" in message and "0..16" in message
    pixels = start_params(VIT, 1, NO_AUGMENT)
    pixels["model"] = {"loader": "nfhm.core.pixels:load", "name": "pixels@8", "weights": None, "image_size": None, "embedding_size": None}
    message = call_error("train.start", pixels, {"train": table32})["message"]
    assert "train.freeze=1" in message and "cannot be partly frozen" in message and "allowed: 0" in message


def test_embedding_lr_scale_gives_the_head_a_third_group(table32) -> None:
    state = WorkerState()
    call("train.start", start_params(VIT, 0, NO_AUGMENT, embedding_lr_scale=0.5), {"train": table32}, state)
    groups = state.session.optimizer.param_groups
    call("train.steps", {"lr": [[1e-3, 4e-3]], "beta1": [[0.8, 0.85]]}, None, state)
    feature = {id(p) for p in state.session.model.feature.parameters()}
    assert len(groups) == 3 and {id(p) for p in groups[2]["params"]} == feature
    assert not feature & {id(p) for p in groups[0]["params"]}
    assert (groups[0]["lr"], groups[1]["lr"], groups[2]["lr"]) == (1e-3, 4e-3, 5e-4)
    assert groups[2]["betas"][0] == 0.8
    call("train.start", start_params(VIT, 0, NO_AUGMENT), {"train": table32}, state)
    assert len(state.session.optimizer.param_groups) == 2  # scale 1: the optimiser as without the option


def test_training_normalises_as_the_model_does(table32) -> None:
    state = WorkerState()
    call("train.start", start_params(LITE0, 0, NO_AUGMENT), {"train": table32}, state)
    assert state.session.images.transform.mean == INPUT_MEAN


def test_a_whole_area_crop_is_the_same_every_time_and_changes_no_later_draw() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    transform = TrainTransform(24, Augmentation(crop_scale=(1.0, 1.0), hflip_prob=0.0, randaug_ops=0, erasing_prob=0.0))
    whole = to_normalized_tensor(image.resize((24, 24), Image.Resampling.BICUBIC), transform.mean, transform.std)
    for seed in range(40):  # 5:4 is within the crop ratios: the whole image, resized
        assert torch.equal(transform(image, torch.Generator().manual_seed(seed)), whole), seed
