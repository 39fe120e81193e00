"""Image transforms with PIL and torch only (torchvision does not import beside CPU torch 2.13).

* ``EvalTransform`` reproduces UNICOM's/CLIP's evaluation pipeline: resize the shorter side
  to ``size`` (bicubic) -> centre crop -> RGB -> tensor -> normalise.
* ``TrainTransform`` adds augmentation whose strength is data (``Augmentation``), so training
  from scratch (``AUGMENTATIONS["strong"]``, UNICOM's retrieval.py recipe) and fine-tuning
  (``AUGMENTATIONS["mild"]``) differ only by configuration.

Every random draw goes through the ``torch.Generator`` passed to ``TrainTransform.__call__``
(or torch's global RNG when none is given, which DataLoader seeds per worker), so a run is
reproducible. Both transforms are frozen dataclasses, hence picklable for DataLoader workers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Grey fill for pixels that geometric ops move in from outside the image (as timm does).
_FILL = (128, 128, 128)


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Bicubic resize so the shorter side is ``size``; the longer side is truncated like torchvision."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    if short == size:
        return image
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    return image.resize(new_size, Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


@functools.lru_cache(maxsize=8)
def _channel_stats(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def to_normalized_tensor(image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [0, 1], then (x - mean) / std per channel.

    In float32 numpy (the same operations as torch, several times faster on one small image).
    """
    mean_a, std_a = _channel_stats(mean, std)
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    return torch.from_numpy(np.ascontiguousarray(((pixels - mean_a) / std_a).transpose(2, 0, 1)))


@dataclass(frozen=True)
class EvalTransform:
    size: int
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    def __call__(self, image: Image.Image) -> torch.Tensor:
        # The order (RGB conversion after the crop) is CLIP's, so palette images match too.
        image = center_crop(resize_shorter_side(image, self.size), self.size).convert("RGB")
        return to_normalized_tensor(image, self.mean, self.std)


class AugmentSpec(TypedDict):
    """The config's train.augment, as the worker receives it."""

    crop_scale: tuple[float, float]
    hflip_prob: float
    randaug_ops: int
    randaug_magnitude: float
    erasing_prob: float


@dataclass(frozen=True)
class Augmentation:
    """Augmentation strength as data. Magnitudes are on RandAugment's 0..10 scale."""

    crop_scale: tuple[float, float] = (0.08, 1.0)  # random-resized-crop area fraction
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # random-resized-crop aspect ratio
    hflip_prob: float = 0.5
    randaug_ops: int = 2  # ops drawn (with replacement) per image
    randaug_magnitude: float = 9.0
    randaug_magnitude_std: float = 0.5  # per-op jitter of the magnitude
    randaug_prob: float = 0.5  # each drawn op is applied with this probability
    erasing_prob: float = 0.25  # random erasing with per-pixel normal noise

    @classmethod
    def from_params(cls, a: AugmentSpec) -> Augmentation:
        """From the worker's `augment` params."""
        return cls(
            crop_scale=tuple(a["crop_scale"]),
            hflip_prob=a["hflip_prob"],
            randaug_ops=a["randaug_ops"],
            randaug_magnitude=a["randaug_magnitude"],
            erasing_prob=a["erasing_prob"],
        )


AUGMENTATIONS: dict[str, Augmentation] = {
    # UNICOM retrieval.py: timm 'rand-m9-mstd0.5-inc1', reprob 0.25, RandomResizedCrop defaults.
    "strong": Augmentation(),
    "mild": Augmentation(
        crop_scale=(0.6, 1.0),
        randaug_ops=1,
        randaug_magnitude=5.0,
        erasing_prob=0.1,
    ),
}


def _uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(generator: torch.Generator | None, low: int, high_inclusive: int) -> int:
    return int(torch.randint(low, high_inclusive + 1, (), generator=generator).item())


def random_resized_crop(
    image: Image.Image,
    size: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
) -> Image.Image:
    """torchvision's RandomResizedCrop algorithm: 10 tries, then a centre crop at a clamped ratio.

    With ``scale == (1, 1)`` (the whole area) the box is always that centre crop: the tries
    could only find the whole image again or, for a non-square image, by rounding, one pixel
    less at a random offset. So no augmentation really is none, and the output of a frozen part
    can be cached (nfhm/core/freeze.py). The tries still draw their numbers, so the draws after
    the crop (flip, RandAugment, erasing) are unchanged; for square images nothing changes.
    """
    width, height = image.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    found = False
    for _ in range(10):
        target_area = area * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, *log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = _randint(generator, 0, height - h)
            left = _randint(generator, 0, width - w)
            found = True
            break
    if not found or scale[0] >= 1.0:
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            w, h = int(round(height * max(ratio))), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    return image.crop((left, top, left + w, top + h)).resize((size, size), Image.Resampling.BICUBIC)


def _affine(image: Image.Image, coefficients: tuple[float, ...]) -> Image.Image:
    return image.transform(image.size, Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR, fillcolor=_FILL)


# RandAugment ops: (image, level in [-1, 1]) -> image. Signed ops use the sign of level;
# 'increasing' ops (posterize, solarize, enhancers) get stronger as |level| grows.
_OPS: dict[str, Callable[[Image.Image, float], Image.Image]] = {
    "auto_contrast": lambda im, lv: ImageOps.autocontrast(im),
    "equalize": lambda im, lv: ImageOps.equalize(im),
    "rotate": lambda im, lv: im.rotate(30.0 * lv, Image.Resampling.BILINEAR, fillcolor=_FILL),
    "posterize": lambda im, lv: ImageOps.posterize(im, 8 - int(4 * abs(lv))),
    "solarize": lambda im, lv: ImageOps.solarize(im, 256 - int(256 * abs(lv))),
    "color": lambda im, lv: ImageEnhance.Color(im).enhance(1.0 + 0.9 * lv),
    "contrast": lambda im, lv: ImageEnhance.Contrast(im).enhance(1.0 + 0.9 * lv),
    "brightness": lambda im, lv: ImageEnhance.Brightness(im).enhance(1.0 + 0.9 * lv),
    "sharpness": lambda im, lv: ImageEnhance.Sharpness(im).enhance(1.0 + 0.9 * lv),
    "shear_x": lambda im, lv: _affine(im, (1, 0.3 * lv, 0, 0, 1, 0)),
    "shear_y": lambda im, lv: _affine(im, (1, 0, 0, 0.3 * lv, 1, 0)),
    "translate_x": lambda im, lv: _affine(im, (1, 0, 0.45 * lv * im.size[0], 0, 1, 0)),
    "translate_y": lambda im, lv: _affine(im, (1, 0, 0, 0, 1, 0.45 * lv * im.size[1])),
}
_OP_NAMES = tuple(_OPS)


def rand_augment(image: Image.Image, aug: Augmentation, generator: torch.Generator | None) -> Image.Image:
    picks = torch.randint(len(_OP_NAMES), (aug.randaug_ops,), generator=generator).tolist()
    for pick in picks:
        if _uniform(generator, 0.0, 1.0) >= aug.randaug_prob:
            continue
        noise = torch.randn((), generator=generator).item() * aug.randaug_magnitude_std
        magnitude = min(max(aug.randaug_magnitude + noise, 0.0), 10.0)
        sign = 1.0 if _uniform(generator, 0.0, 1.0) < 0.5 else -1.0
        image = _OPS[_OP_NAMES[pick]](image, sign * magnitude / 10.0)
    return image


def random_erase(tensor: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Erase one random rectangle (2%-33% of the area, ratio 0.3-3.3) with normal noise."""
    channels, height, width = tensor.shape
    log_ratio = (math.log(0.3), math.log(1 / 0.3))
    for _ in range(10):
        target_area = height * width * _uniform(generator, 0.02, 1 / 3)
        aspect = math.exp(_uniform(generator, *log_ratio))
        h = int(round(math.sqrt(target_area * aspect)))
        w = int(round(math.sqrt(target_area / aspect)))
        if 0 < h < height and 0 < w < width:
            top = _randint(generator, 0, height - h)
            left = _randint(generator, 0, width - w)
            tensor = tensor.clone()
            tensor[:, top : top + h, left : left + w] = torch.randn((channels, h, w), generator=generator)
            return tensor
    return tensor


@dataclass(frozen=True)
class TrainTransform:
    size: int
    augmentation: Augmentation = AUGMENTATIONS["strong"]
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        aug = self.augmentation
        # RGB first: the enhancers and ops need it, and grey inputs must become 3 channels.
        image = random_resized_crop(image.convert("RGB"), self.size, aug.crop_scale, aug.crop_ratio, generator)
        if _uniform(generator, 0.0, 1.0) < aug.hflip_prob:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if aug.randaug_ops > 0:
            image = rand_augment(image, aug, generator)
        tensor = to_normalized_tensor(image, self.mean, self.std)
        if _uniform(generator, 0.0, 1.0) < aug.erasing_prob:
            tensor = random_erase(tensor, generator)
        return tensor
