"""UNICOM's ViT image encoder, with the exact module tree and state-dict keys of its releases.

Differences from the original, all deliberate:

* ``load`` takes a weights file (UNICOM release ``FP16-ViT-*.pt`` or an nfhm
  ``trained_model.pt``) and never downloads; it honours ``device`` and returns fp32 in eval mode.
* No precision is forced inside the blocks (UNICOM wraps them in fp16 autocast); the caller
  picks one with ``nfhm.core.precision``.
* ``image_size`` may differ from the config: position embeddings and the token-tied
  ``feature.0.weight`` are resampled over the token grid when a checkpoint is loaded.
* Small configs of the same architecture (``*@28px``) for CPU work.

Names of the form ``openclip:<arch>`` load an OpenCLIP image tower instead
(``nfhm.core.openclip_tower``, optional extra), and ``efficientnet-lite0`` (1, 2) an
ImageNet-pretrained convolutional encoder (``nfhm.core.efficientnet_lite``).

The ViT can be partly frozen (``nfhm.core.freeze``): ``freeze(n)`` freezes the patch and
position embeddings and the first n blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_strict, read_state_dict
from .efficientnet_lite import VARIANTS as EFFICIENTNET_LITE_VARIANTS
from .efficientnet_lite import load as load_efficientnet_lite
from .freeze import PartlyFrozen
from .transforms import EvalTransform
from .user_input import users_input

BN_EPS = 2e-5
OPENCLIP_PREFIX = "openclip:"
EFFICIENTNET_LITE_PREFIX = "efficientnet-lite"


@dataclass(frozen=True)
class ViTConfig:
    image_size: int
    patch_size: int
    width: int
    depth: int
    heads: int
    embedding_size: int
    mlp_ratio: int = 4
    drop_path_rate: float = 0.1


CONFIGS: dict[str, ViTConfig] = {
    "ViT-B/32": ViTConfig(224, 32, 768, 12, 12, 512),
    "ViT-B/16": ViTConfig(224, 16, 768, 12, 12, 768),
    "ViT-L/14": ViTConfig(224, 14, 1024, 24, 16, 768),
    "ViT-L/14@336px": ViTConfig(336, 14, 1024, 24, 16, 768),
    # CPU-sized members of the same family: 28x28 inputs, 7x7 = 49 tokens like ViT-B/32.
    # A fp32 training step at batch 128 took ~35 ms (T) and ~150 ms (S) on 2 shared CPU cores.
    "ViT-T/4@28px": ViTConfig(28, 4, 32, 2, 2, 32, drop_path_rate=0.0),
    "ViT-S/4@28px": ViTConfig(28, 4, 64, 4, 4, 64, drop_path_rate=0.1),
    # The demo's model: 4x4 = 16 tokens of 7x7 pixels make attention and the per-token matmuls
    # cheap enough for twice the width and one more block. A demo step (batch 128, 5,000 classes
    # sampled at 0.2, one thread) took ~50 ms; ViT-T/4's at its old demo settings (10,000 classes,
    # all scored) ~75 ms (README).
    "ViT-S/7@28px": ViTConfig(28, 7, 64, 3, 2, 64, drop_path_rate=0.0),
}


def available_models() -> list[str]:
    """The built-in UNICOM-family names (OpenCLIP towers are ``openclip:<arch>``)."""
    return list(CONFIGS)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbedding(nn.Module):
    def __init__(self, patch_size: int, width: int, in_channels: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        # (B, N, 3, H, Dh) -> (3, B, H, N, Dh): the qkv row order of UNICOM's weights.
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.ReLU6()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, width * mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(PartlyFrozen, nn.Module):
    """UNICOM's encoder: patches + position embedding (no class token), pre-norm blocks,
    final LayerNorm, then a head over ALL tokens flattened (N*D -> D -> E, BatchNorm after
    each Linear). The output is not L2-normalised."""

    def __init__(self, config: ViTConfig, image_size: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.image_size = image_size or config.image_size
        patch = config.patch_size
        if self.image_size % patch or self.image_size < patch:
            below, above = self.image_size // patch * patch, (self.image_size // patch + 1) * patch
            nearest = " and ".join(str(s) for s in (below, above) if s >= patch)
            raise users_input(ValueError(
                f"model.image_size={self.image_size} is not a multiple of the patch size {patch}: "
                f"the nearest sizes this model takes are {nearest} (its native size is {config.image_size})"
            ))
        self.num_tokens = (self.image_size // config.patch_size) ** 2
        width = config.width
        self.patch_embed = PatchEmbedding(config.patch_size, width)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, width))
        # Linearly increasing drop-path rates, 0 at the first block (torch.linspace's values,
        # computed in Python so that building on the meta device works).
        rates = [config.drop_path_rate * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.blocks = nn.ModuleList(Block(width, config.heads, config.mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(width)
        self.feature = nn.Sequential(
            nn.Linear(self.num_tokens * width, width, bias=False),
            nn.BatchNorm1d(width, eps=BN_EPS),
            nn.Linear(width, config.embedding_size, bias=False),
            nn.BatchNorm1d(config.embedding_size, eps=BN_EPS),
        )
        self._init_weights()
        # The final LayerNorm's bias and the first BatchNorm's bias shift every sample alike,
        # and the next BatchNorm (behind a Linear without bias) removes that shift while it
        # normalises with batch statistics: their gradient is then zero in exact arithmetic.
        # In floats it is rounding noise (~1e-7), which AdamW (eps 1e-8) turns into full-size
        # random steps that depend on the summation order (batch size, number of processes).
        # The hooks return the exact zero; with BatchNorm in eval mode the gradient is real.
        self.norm.bias.register_hook(lambda grad: self._cancelled_shift(grad, 1))
        self.feature[1].bias.register_hook(lambda grad: self._cancelled_shift(grad, 3))

    def _cancelled_shift(self, grad: torch.Tensor, batchnorm: int) -> torch.Tensor:
        return torch.zeros_like(grad) if self.feature[batchnorm].training else grad

    def _init_weights(self) -> None:
        # UNICOM's: trunc-normal(0.02) for Linear weights and pos_embed; the patch conv and
        # BatchNorms keep PyTorch's defaults.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def embedding_size(self) -> int:
        return self.config.embedding_size

    @property
    def embedding_head(self) -> nn.Module:
        return self.feature

    def _stem_parts(self) -> list[nn.Module | nn.Parameter]:
        return [self.patch_embed, self.pos_embed]

    def _check_size(self, images: torch.Tensor) -> None:
        if images.shape[-2:] != (self.image_size, self.image_size):
            # The head is tied to the token count, so other sizes cannot run through.
            raise ValueError(
                f"expected {self.image_size}x{self.image_size} images, got {tuple(images.shape[-2:])}; "
                f"load the model with image_size={images.shape[-1]} to resample it"
            )

    def forward_frozen(self, images: torch.Tensor) -> torch.Tensor:
        """Patch and position embedding and the frozen blocks: (B, N, D) tokens (the images
        themselves when nothing is frozen)."""
        if self.frozen_blocks == 0:
            return images
        self._check_size(images)
        x = self.patch_embed(images) + self.pos_embed
        for block in self.blocks[: self.frozen_blocks]:
            x = block(x)
        return x

    def forward_trained(self, h: torch.Tensor) -> torch.Tensor:
        """What follows ``forward_frozen``: the other blocks, the final norm and the head."""
        if self.frozen_blocks == 0:
            self._check_size(h)
            h = self.patch_embed(h) + self.pos_embed
        for block in self.blocks[self.frozen_blocks :]:
            h = block(h)
        h = self.norm(h)
        return self.feature(h.reshape(h.shape[0], -1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._check_size(images)
        x = self.patch_embed(images) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.feature(x.reshape(x.shape[0], -1))


def get_config(name: str) -> ViTConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        known = [*CONFIGS, *EFFICIENTNET_LITE_VARIANTS]
        raise ValueError(f"unknown model {name!r}; available: {', '.join(known)} (or openclip:<arch>)") from None


def create_model(
    name: str, image_size: int | None = None, device: torch.device | str | None = None
) -> VisionTransformer:
    """A randomly initialised model; ``device="meta"`` builds the structure without memory."""
    with torch.device(device or "cpu"):
        return VisionTransformer(get_config(name), image_size)


def _resample_grid(tensor: torch.Tensor, new_grid: int) -> torch.Tensor:
    """Bilinear resampling of (C, g, g, D) over its (g, g) token grid."""
    channels, grid, _, width = tensor.shape
    spatial = tensor.float().permute(0, 3, 1, 2)  # (C, D, g, g)
    spatial = F.interpolate(spatial, size=(new_grid, new_grid), mode="bilinear", align_corners=False)
    return spatial.permute(0, 2, 3, 1).reshape(channels, new_grid * new_grid * width)


def resample_token_grid(state: dict[str, torch.Tensor], new_tokens: int) -> dict[str, torch.Tensor]:
    """Adapt a UNICOM state dict to a model with ``new_tokens`` patches.

    ``pos_embed`` (1, N, D) is interpolated over its grid. ``feature.0.weight`` (D, N*D) is
    viewed as (D, g, g, D), interpolated the same way, and scaled by N / N_new: it sums over
    tokens, so without the factor a larger grid would inflate its output and mismatch the
    BatchNorm's running statistics that follow. Non-square or absent grids are left as they
    are (strict loading then reports them).
    """
    pos = state.get("pos_embed")
    if pos is None or pos.ndim != 3 or pos.shape[1] == new_tokens:
        return state
    old_tokens, width = pos.shape[1], pos.shape[2]
    old_grid, new_grid = round(old_tokens**0.5), round(new_tokens**0.5)
    if old_grid**2 != old_tokens or new_grid**2 != new_tokens:
        return state
    state = dict(state)
    state["pos_embed"] = _resample_grid(pos.reshape(1, old_grid, old_grid, width), new_grid).reshape(
        1, new_tokens, width
    )
    head = state.get("feature.0.weight")
    if head is not None and head.ndim == 2 and head.shape[1] == old_tokens * width:
        resampled = _resample_grid(head.reshape(head.shape[0], old_grid, old_grid, width), new_grid)
        state["feature.0.weight"] = resampled * (old_tokens / new_tokens)
    return state


def load(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    image_size: int | None = None,
    embedding_size: int | None = None,
) -> tuple[nn.Module, EvalTransform]:
    """Build ``name`` and load ``weights`` strictly; returns (fp32 model in eval mode, eval transform).

    ``weights``: a UNICOM release file (flat fp16 state dict) or an nfhm ``trained_model.pt``
    (same layout, fp32). ``None`` gives a randomly initialised model (training from scratch).
    ``image_size`` (default: the config's) may differ from the checkpoint's: see
    ``resample_token_grid``. ``embedding_size`` (default: the config's) cannot differ from the
    named config's: a UNICOM release fixes it. ``openclip:<arch>`` names go to the OpenCLIP
    family, ``efficientnet-lite*`` names to EfficientNet-Lite (where ``embedding_size`` is free).
    """
    if name.startswith(EFFICIENTNET_LITE_PREFIX):
        return load_efficientnet_lite(name, weights, device, image_size, embedding_size)
    if name.startswith(OPENCLIP_PREFIX):
        if embedding_size is not None:
            raise ValueError(
                f"model.embedding_size={embedding_size}: OpenCLIP towers keep their own output size; leave it null"
            )
        # Imported here only: open_clip imports torchvision, which the core must not need.
        from .openclip_tower import load_openclip

        return load_openclip(name[len(OPENCLIP_PREFIX) :], weights, device, image_size)
    config = get_config(name)
    if embedding_size is not None and embedding_size != config.embedding_size:
        raise ValueError(
            f"model.embedding_size={embedding_size}: {name} has embedding size {config.embedding_size} "
            f"(fixed by its release); allowed: null or {config.embedding_size}"
        )
    model = create_model(name, image_size)
    if weights is not None:
        state = resample_token_grid(read_state_dict(weights), model.num_tokens)
        load_strict(model, state, weights)
    return model.float().to(device).eval(), EvalTransform(model.image_size)
