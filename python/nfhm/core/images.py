"""Reading image files: decoded, upright, 8-bit RGB, or the reason a file cannot be used.

torch is not imported here: `collate_images` imports it when batches are actually built.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from PIL import Image, ImageFile, ImageOps

if TYPE_CHECKING:
    import torch

# What a viewer shows under transparent pixels; the colours stored there are arbitrary.
BACKGROUND = (255, 255, 255, 255)


class UnreadableImage(Exception):
    """An image file that cannot be used; the message is the reason shown to the user."""


@dataclass(frozen=True)
class BadImage:
    """What ImageDataset yields instead of a tensor, so one bad file never stops a DataLoader."""

    reason: str


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode PIL reads, without the silent damage plain convert("RGB") does."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "I" or mode.startswith("I;16"):
        # 16-bit grey (PNG/TIFF): convert("RGB") would clip everything above 255 to white.
        pixels = np.clip(np.asarray(image, dtype=np.float64), 0, 65535) / 257.0
        return Image.fromarray(np.rint(pixels).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        raise UnreadableImage("32-bit floating-point pixels are not supported; save it as 8- or 16-bit")
    if image.has_transparency_data:  # an alpha channel, or a transparent palette/grey value
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND), rgba).convert("RGB")
    return image.convert("RGB")  # grey, bilevel, palette, CMYK, YCbCr


def open_rgb(path: str, max_pixels: int = Image.MAX_IMAGE_PIXELS) -> Image.Image:
    """The decoded, upright, 8-bit RGB image at `path`, or UnreadableImage saying why not."""
    # A truncated file must be reported, not silently completed with grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        # PIL warns above Image.MAX_IMAGE_PIXELS and refuses twice that; the check below refuses
        # above max_pixels. No warnings filter around the call: entering one cost ~6 us an image,
        # against ~100 us to decode a 28x28 PNG.
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise UnreadableImage(
                    f"too large: {width} x {height} pixels is over the limit of {max_pixels:,} "
                    "(a guard against decompression bombs)"
                )
            image.load()
            # In place: exif_transpose would copy every image, even one without an orientation
            # tag (~6 us). Only an RGB image comes back from to_rgb as it was opened, and only it
            # needs copying out of the Image that `with` closes.
            ImageOps.exif_transpose(image, in_place=True)
            rgb = to_rgb(image)
            return image.copy() if rgb is image else rgb
    except UnreadableImage:
        raise
    except FileNotFoundError:
        raise UnreadableImage("file not found") from None
    except IsADirectoryError:
        raise UnreadableImage("a folder, not an image file") from None
    except PermissionError:
        raise UnreadableImage("permission denied") from None
    except Image.UnidentifiedImageError:
        # Only now is the size worth a stat (~6 us an image up front).
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise UnreadableImage("empty file (0 bytes)") from None
        raise UnreadableImage("not an image PIL can read (wrong extension, or a damaged header)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImage(f"too large: {e}") from None
    except Exception as e:  # noqa: BLE001 - decoders fail in many ways; each means a damaged file
        raise UnreadableImage(f"truncated or damaged ({type(e).__name__}: {e})") from None


class ImageDataset:
    """Item i is (i, transform(RGB image i)), or (i, BadImage(reason)) for a file that cannot be read.

    A plain map-style dataset (DataLoader needs only __len__ and __getitem__), so that importing
    this module does not import torch.
    """

    def __init__(
        self, paths: Sequence[str], transform: Callable[[Image.Image], Any], max_pixels: int = Image.MAX_IMAGE_PIXELS
    ) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        try:
            image = open_rgb(self.paths[index], self.max_pixels)
        except UnreadableImage as e:
            return index, BadImage(str(e))
        return index, self.transform(image)


class ImageBatch(NamedTuple):
    indices: list[int]  # dataset indices of the good items, in batch order
    images: torch.Tensor | None  # the good items stacked; None when every item was bad
    bad: list[tuple[int, str]]  # (dataset index, reason)


def collate_images(items: list[tuple[int, Any]]) -> ImageBatch:
    """DataLoader collate_fn for ImageDataset: separates good items from bad ones."""
    import torch

    good = [(i, x) for i, x in items if not isinstance(x, BadImage)]
    bad = [(i, x.reason) for i, x in items if isinstance(x, BadImage)]
    images = torch.stack([x for _, x in good]) if good else None
    return ImageBatch([i for i, _ in good], images, bad)
