"""The UNICOM ViT family: release layouts, strict checkpoint loading, resampling, transforms."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from nfhm.core.checkpoint import CheckpointError
from nfhm.core.model import available_models, create_model, load
from nfhm.core.transforms import (
    AUGMENTATIONS,
    CLIP_MEAN,
    CLIP_STD,
    Augmentation,
    EvalTransform,
    TrainTransform,
)

SMALL = "ViT-T/4@28px"

# From the facts sheet: (width D, depth, tokens N, embedding E, patch, parameters in millions).
RELEASES = {
    "ViT-B/32": (768, 12, 49, 512, 32, 116.7),
    "ViT-B/16": (768, 12, 196, 768, 16, 202.0),
    "ViT-L/14": (1024, 24, 256, 768, 14, 572.3),
    "ViT-L/14@336px": (1024, 24, 576, 768, 14, 908.2),
}


def release_layout(width: int, depth: int, tokens: int, embedding: int, patch: int) -> dict[str, tuple[int, ...]]:
    """The state-dict layout of a UNICOM release file, written out from the facts sheet."""
    layout: dict[str, tuple[int, ...]] = {
        "pos_embed": (1, tokens, width),
        "patch_embed.proj.weight": (width, 3, patch, patch),
        "patch_embed.proj.bias": (width,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        layout |= {
            b + "norm1.weight": (width,),
            b + "norm1.bias": (width,),
            b + "attn.qkv.weight": (3 * width, width),
            b + "attn.proj.weight": (width, width),
            b + "attn.proj.bias": (width,),
            b + "norm2.weight": (width,),
            b + "norm2.bias": (width,),
            b + "mlp.fc1.weight": (4 * width, width),
            b + "mlp.fc1.bias": (4 * width,),
            b + "mlp.fc2.weight": (width, 4 * width),
            b + "mlp.fc2.bias": (width,),
        }
    layout |= {"norm.weight": (width,), "norm.bias": (width,), "feature.0.weight": (width, tokens * width)}
    for index, size in ((1, width), (3, embedding)):
        for name in ("weight", "bias", "running_mean", "running_var"):
            layout[f"feature.{index}.{name}"] = (size,)
        layout[f"feature.{index}.num_batches_tracked"] = ()
    layout["feature.2.weight"] = (embedding, width)
    return layout


@pytest.mark.parametrize("name", list(RELEASES))
def test_release_layout_matches_facts_sheet(name: str) -> None:
    *dims, millions = RELEASES[name]
    state = create_model(name, device="meta").state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == release_layout(*dims)
    params = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert round(params / 1e6, 1) == millions


def test_vit_b32_key_count_and_head_shapes() -> None:
    state = create_model("ViT-B/32", device="meta").state_dict()
    assert len(state) == 149
    assert state["feature.0.weight"].shape == (768, 37632)
    assert state["feature.2.weight"].shape == (512, 768)
    large = create_model("ViT-L/14@336px", device="meta").state_dict()
    assert large["feature.0.weight"].shape == (1024, 589824)
    assert large["feature.2.weight"].shape == (768, 1024)


def test_available_models_lists_releases_and_cpu_configs() -> None:
    names = available_models()
    assert set(RELEASES) <= set(names)
    assert {SMALL, "ViT-S/4@28px", "ViT-S/7@28px"} <= set(names)


@pytest.mark.parametrize(
    ("name", "tokens", "embedding"), [(SMALL, 49, 32), ("ViT-S/4@28px", 49, 64), ("ViT-S/7@28px", 16, 64)]
)
def test_cpu_configs_embed_28px_images_and_reload_exactly(name: str, tokens: int, embedding: int, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert model.num_tokens == tokens and model.pos_embed.shape[1] == tokens
    torch.save(model.state_dict(), tmp_path / "w.pt")
    loaded, transform = load(name, weights=tmp_path / "w.pt")
    images = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        out = model(images)
        assert out.shape == (4, embedding) and transform.size == 28
        assert torch.equal(loaded(images), out)


def trained_small_model() -> torch.nn.Module:
    """A small model with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(0)
    model = create_model(SMALL).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 3, 28, 28) * 2 + 0.5)
    return model.eval()


def save_fp16(model: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    return state


def test_model_outputs_are_raw_embeddings() -> None:
    model, transform = load(SMALL)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    out = model(torch.randn(4, 3, 28, 28))
    assert out.shape == (4, 32)
    assert not torch.allclose(out.norm(dim=1), torch.ones(4))  # not L2-normalised
    assert transform.size == 28
    with pytest.raises(ValueError, match="28x28"):
        model(torch.randn(2, 3, 32, 32))


def test_fp16_release_file_loads_strictly_with_same_outputs(tmp_path: Path) -> None:
    original = trained_small_model()
    path = tmp_path / "FP16-small.pt"
    state = save_fp16(original, path)
    loaded, _ = load(SMALL, weights=path)
    images = torch.randn(8, 3, 28, 28)
    # Exactly the fp16-rounded weights...
    rounded = trained_small_model()
    rounded.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), rounded(images), rtol=1e-5, atol=1e-5)
        # ...and so the saved model's outputs up to fp16 rounding of its weights.
        reference = original(images)
        error = (loaded(images) - reference).norm() / reference.norm()
    assert error < 1e-2


def test_num_batches_tracked_may_be_absent(tmp_path: Path) -> None:
    state = {k: v for k, v in trained_small_model().state_dict().items() if "num_batches_tracked" not in k}
    torch.save(state, tmp_path / "w.pt")
    load(SMALL, weights=tmp_path / "w.pt")


def test_mismatched_checkpoint_lists_every_problem(tmp_path: Path) -> None:
    state = trained_small_model().state_dict()
    del state["blocks.0.attn.qkv.weight"]
    state["blocks.0.attn.qkv.bias"] = torch.zeros(96)
    state["norm.weight"] = torch.ones(7)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load(SMALL, weights=path)
    message = str(info.value)
    assert str(path) in message
    assert "missing (1): blocks.0.attn.qkv.weight" in message
    assert "unexpected (1): blocks.0.attn.qkv.bias" in message
    assert "norm.weight: file (7,) vs model (32,)" in message


def test_pickled_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(trained_small_model(), path)
    with pytest.raises(CheckpointError, match="not a plain state dict") as info:
        load(SMALL, weights=path)
    assert str(path) in str(info.value)


def test_non_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="not a flat state dict"):
        load(SMALL, weights=path)


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_file_gives_clear_error(tmp_path: Path, keep: float) -> None:
    good = tmp_path / "good.pt"
    save_fp16(trained_small_model(), good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match="cannot read checkpoint") as info:
        load(SMALL, weights=bad)
    assert str(bad) in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load(SMALL, weights=tmp_path / "absent.pt")


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError, match="ViT-B/32"):
        load("ViT-X/99")


def test_checkpoint_loads_at_another_image_size(tmp_path: Path) -> None:
    original = trained_small_model()
    path = tmp_path / "w28.pt"
    save_fp16(original, path)
    model, transform = load(SMALL, weights=path, image_size=56)
    assert transform.size == 56 and model.num_tokens == 196
    assert model.pos_embed.shape == (1, 196, 32)
    assert model.feature[0].weight.shape == (32, 196 * 32)
    with torch.no_grad():
        out = model(torch.randn(4, 3, 56, 56))
    assert out.shape == (4, 32) and torch.isfinite(out).all()
    # The head sums over tokens: resampling keeps its response to a spatially constant
    # token map (bilinear 2x upsampling plus the N/N' factor preserve the sum exactly).
    old = original.feature[0].weight.detach().half().float().reshape(32, 49, 32).sum(1)
    new = model.feature[0].weight.detach().reshape(32, 196, 32).sum(1)
    torch.testing.assert_close(new, old, rtol=1e-4, atol=1e-5)
    # A 56px checkpoint goes back to 28px too.
    torch.save(model.state_dict(), tmp_path / "w56.pt")
    small, _ = load(SMALL, weights=tmp_path / "w56.pt")
    assert small.pos_embed.shape == (1, 49, 32)


def test_eval_transform_matches_clip_recipe() -> None:
    image = Image.new("RGB", (60, 40), (200, 100, 50))
    tensor = EvalTransform(28)(image)
    assert tensor.shape == (3, 28, 28)
    expected = (torch.tensor([200, 100, 50]) / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(tensor[:, 14, 14], expected, rtol=1e-5, atol=1e-5)
    grey = EvalTransform(28)(Image.new("L", (28, 28), 128))
    assert grey.shape == (3, 28, 28)


def test_eval_transform_crops_the_centre() -> None:
    # Left third black, right two thirds white: after resizing to 28x42 and cropping the
    # middle 28 columns, the crop starts 7 columns in, i.e. in the black part.
    image = Image.new("L", (30, 20), 255)
    image.paste(0, (0, 0, 10, 20))
    tensor = EvalTransform(28, mean=(0.0,) * 3, std=(1.0,) * 3)(image)
    assert tensor[0, 14, 0] < 0.1 and tensor[0, 14, -1] > 0.9


def test_train_transform_is_reproducible_and_picklable() -> None:
    image = Image.fromarray((torch.rand(40, 50, 3) * 255).to(torch.uint8).numpy())
    transform = pickle.loads(pickle.dumps(TrainTransform(28, AUGMENTATIONS["strong"])))
    first = transform(image, torch.Generator().manual_seed(1))
    again = transform(image, torch.Generator().manual_seed(1))
    other = transform(image, torch.Generator().manual_seed(2))
    assert first.shape == (3, 28, 28)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert transform(image.convert("L"), torch.Generator().manual_seed(1)).shape == (3, 28, 28)


def test_every_augmentation_op_runs_at_full_strength() -> None:
    image = Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy())
    wild = Augmentation(randaug_ops=40, randaug_magnitude=10.0, randaug_prob=1.0, erasing_prob=1.0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        assert torch.isfinite(TrainTransform(28, wild)(image, generator)).all()


def test_strength_is_configuration() -> None:
    image = Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy())
    identity = Augmentation(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_prob=0.0, randaug_ops=0, erasing_prob=0.0
    )
    plain = TrainTransform(32, identity)(image, torch.Generator().manual_seed(0))
    torch.testing.assert_close(plain, EvalTransform(32)(image))
    assert AUGMENTATIONS["mild"].crop_scale[0] > AUGMENTATIONS["strong"].crop_scale[0]


def test_core_imports_no_torchvision() -> None:
    code = (
        "import importlib, pkgutil, sys, nfhm.core; "
        "[importlib.import_module(m.name) for m in pkgutil.iter_modules(nfhm.core.__path__, 'nfhm.core.')]; "
        "bad = [m for m in ('torchvision', 'open_clip') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_biases_the_next_batchnorm_cancels_get_an_exact_zero_gradient() -> None:
    torch.manual_seed(0)
    model = create_model("ViT-T/4@28px").train()
    images = torch.randn(8, 3, 28, 28)
    model(images).square().sum().backward()
    cancelled = (model.norm.bias, model.feature[1].bias)
    assert all(p.grad.abs().max() == 0 for p in cancelled)
    # The math, independently: in float64 and without the hooks (a deep copy drops them) the
    # gradient is rounding noise, while its neighbours' gradients are of order one.
    reference = copy.deepcopy(model).double()
    reference.zero_grad()
    reference(images.double()).square().sum().backward()
    assert reference.norm.bias.grad.abs().max() < 1e-9 and reference.feature[1].bias.grad.abs().max() < 1e-9
    assert reference.norm.weight.grad.abs().max() > 1e-3 and reference.feature[1].weight.grad.abs().max() > 1e-3
    # With BatchNorm in eval mode (running statistics) the shift is not removed: real gradients.
    model.zero_grad()
    model.eval()
    model(images).square().sum().backward()
    assert all(p.grad.abs().max() > 1e-3 for p in cancelled)
