"""The optional OpenCLIP family. Skipped where open_clip cannot be imported (it needs a
torchvision that imports beside the installed torch; see docs/compute-core.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

try:
    import open_clip
except Exception as err:  # absent, or torchvision failing to load beside this torch
    pytest.skip(f"open_clip unavailable: {err}", allow_module_level=True)

from nfhm.core.checkpoint import CheckpointError
from nfhm.core.model import load

ARCH = "nfhm-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 500, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A random-init OpenCLIP model made by open_clip itself, saved as a full state dict."""
    folder = tmp_path_factory.mktemp("openclip")
    (folder / f"{ARCH}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    clip = open_clip.create_model(ARCH).eval()
    path = folder / "clip.pt"
    torch.save(clip.state_dict(), path)
    return clip, path


def test_full_checkpoint_loads_with_same_image_embeddings(clip_checkpoint: tuple[torch.nn.Module, Path]) -> None:
    clip, path = clip_checkpoint
    tower, transform = load(f"openclip:{ARCH}", weights=path)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(tower(images), clip.encode_image(images))
    assert transform.size == 32


def test_tower_state_dict_loads_too(clip_checkpoint: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    clip, _ = clip_checkpoint
    torch.save(clip.visual.state_dict(), tmp_path / "tower.pt")
    tower, _ = load(f"openclip:{ARCH}", weights=tmp_path / "tower.pt")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(tower(images), clip.encode_image(images))


def test_mismatched_checkpoint_is_refused(clip_checkpoint: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    clip, _ = clip_checkpoint
    state = clip.visual.state_dict()
    state["proj"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="proj: file"):
        load(f"openclip:{ARCH}", weights=tmp_path / "bad.pt")


def test_other_image_size_resizes_position_grid(clip_checkpoint: tuple[torch.nn.Module, Path]) -> None:
    _, path = clip_checkpoint
    tower, transform = load(f"openclip:{ARCH}", weights=path, image_size=64)
    with torch.no_grad():
        out = tower(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 24) and torch.isfinite(out).all() and transform.size == 64


def test_eval_transform_equals_open_clip_preprocessing() -> None:
    # nfhm's PIL+torch transform against open_clip's torchvision pipeline.
    reference = open_clip.image_transform(224, is_train=False)
    ours = load("openclip:ViT-B-32")[1]
    generator = torch.Generator().manual_seed(0)
    for size in ((300, 200), (200, 351), (224, 224), (97, 130)):
        pixels = (torch.rand(size[1], size[0], 3, generator=generator) * 255).to(torch.uint8).numpy()
        for image in (Image.fromarray(pixels), Image.fromarray(pixels).convert("L")):
            torch.testing.assert_close(ours(image), reference(image), rtol=0, atol=1e-5)
