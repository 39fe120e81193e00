"""A collection's image list (`data.scan`) and the reading of its image files (`ImageDataset`).

A collection is a table (CSV, TSV or Parquet) with an image-path column and optional label
and split columns, or a folder tree with one sub-folder per class. Both become the table
`images` (path, label, split). Every problem a user can fix names the file and the rows.

torch is not imported here: the worker imports this module at start-up, and torch costs
seconds there; `collate_images` imports it when batches are actually built.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
from PIL import Image, ImageFile, ImageOps

from .worker import Tables, Worker, die_with_parent, method

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DELIMITERS = {".csv": ",", ".tsv": "\t"}  # text tables; ".parquet" is the binary one
EXAMPLES = 5  # rows named in one error message
IMAGES_SCHEMA = pa.schema(
    [pa.field("path", pa.string(), nullable=False), pa.field("label", pa.string()), pa.field("split", pa.string())]
)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# What a viewer shows under transparent pixels; the colours stored there are arbitrary.
BACKGROUND = (255, 255, 255, 255)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- data.scan ---------------------------------------------------------------


@dataclass(frozen=True)
class RowNumbers:
    """Rows as the user's viewer numbers them: a spreadsheet counts the header as row 1."""

    first: int  # the number of the first data row
    note: str

    def name(self, rows: Sequence[int] | np.ndarray) -> str:
        shown = [str(int(r) + self.first) for r in list(rows)[:EXAMPLES]]
        more = f" and {len(rows) - EXAMPLES} more" if len(rows) > EXAMPLES else ""
        return f"row{'s' if len(rows) > 1 else ''} {', '.join(shown)}{more}"


SPREADSHEET_ROWS = RowNumbers(2, "row numbers as a spreadsheet shows them: the header is row 1")
PARQUET_ROWS = RowNumbers(1, "data rows counted from 1")


def _table_columns(path: str) -> list[str]:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path).names
    # utf-8-sig: spreadsheets often start "CSV UTF-8" files with a byte-order mark.
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        return next(csv.reader(f, delimiter=DELIMITERS[ext]), [])


def _read_columns(path: str, columns: list[str]) -> pa.Table:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=columns)
    import pyarrow.csv as pcsv

    # Text columns stay text: inference would turn paths like "0001" or labels into numbers.
    return pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(delimiter=DELIMITERS[ext]),
        convert_options=pcsv.ConvertOptions(
            include_columns=columns,
            column_types={c: pa.string() for c in columns},
            strings_can_be_null=True,
        ),
    )


def _unreadable(path: str, error: Exception) -> ValueError:
    hint = " (save it as UTF-8)" if "UTF8" in str(error) else ""
    return ValueError(f"{path}: cannot read the table{hint}: {error}")


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(pa.string()) if column.type != pa.string() else column


def _require_paths(path: str, column: str, values: list[str | None], rows: RowNumbers) -> None:
    empty = [i for i, v in enumerate(values) if v is None or not v.strip()]
    if empty:
        raise ValueError(
            f"{path}: column {column!r} has no image path in {rows.name(empty)} ({rows.note}); "
            "every row needs one"
        )


def _require_unique(path: str, column: str, resolved: list[str], rows: RowNumbers) -> None:
    first_row: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    for i, p in enumerate(resolved):
        if p in first_row:
            repeats.setdefault(p, [first_row[p]]).append(i)
        else:
            first_row[p] = i
    if repeats:
        examples = "; ".join(f"{rows.name(r)}: {p}" for p, r in list(repeats.items())[:EXAMPLES])
        count = f"{len(repeats)} image{'s' if len(repeats) > 1 else ''}"
        raise ValueError(
            f"{path}: column {column!r} lists {count} more than once ({rows.note}): {examples}. "
            "List each image once"
        )


def _require_one_label_kind(path: str, column: str, labels: list[str | None], rows: RowNumbers) -> None:
    """Labels that are partly numbers and partly words are usually a data-entry slip."""
    numeric = [i for i, v in enumerate(labels) if v is not None and _NUMBER.fullmatch(v.strip())]
    textual = [i for i, v in enumerate(labels) if v is not None and not _NUMBER.fullmatch(v.strip())]
    if numeric and textual:
        raise ValueError(
            f"{path}: column {column!r} mixes numbers and text ({rows.note}): numbers in "
            f"{rows.name(numeric)} (e.g. {labels[numeric[0]]!r}), text in {rows.name(textual)} "
            f"(e.g. {labels[textual[0]]!r}). Write every label the same way"
        )


def scan_table(
    path: str, image_root: str | None, path_column: str, label_column: str | None, split_column: str | None
) -> pa.Table:
    """The `images` table of a CSV/TSV/Parquet file. Relative paths are joined to `image_root`
    (default: the table's own folder); absolute ones are kept."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (*DELIMITERS, ".parquet"):
        raise ValueError(f"{path}: unsupported table type {ext or '(no extension)'!r}; save it as .csv, .tsv or .parquet")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"table {path} not found")
    try:
        available = _table_columns(path)
    except (pa.ArrowInvalid, OSError, csv.Error) as e:
        raise _unreadable(path, e) from None
    wanted = {"path": path_column, "label": label_column, "split": split_column}
    for role, column in wanted.items():
        if column is not None and column not in available:
            raise ValueError(f"{path}: no {role} column {column!r}; the columns are {available}")
    columns = list(dict.fromkeys(c for c in wanted.values() if c is not None))
    try:
        table = _read_columns(path, columns)
    except (pa.ArrowInvalid, OSError) as e:
        raise _unreadable(path, e) from None
    if table.num_rows == 0:
        raise ValueError(f"{path}: the table has no data rows")
    rows = PARQUET_ROWS if ext == ".parquet" else SPREADSHEET_ROWS

    raw_paths = _as_text(table[path_column]).to_pylist()
    _require_paths(path, path_column, raw_paths, rows)
    root = image_root if image_root is not None else os.path.dirname(os.path.abspath(path))
    resolved = [os.path.normpath(os.path.join(root, p)) for p in raw_paths]
    _require_unique(path, path_column, resolved, rows)

    out: dict[str, Any] = {"path": resolved}
    for role in ("label", "split"):
        column = wanted[role]
        values = _as_text(table[column]).to_pylist() if column is not None else [None] * table.num_rows
        # Stripped, so "wren " and "wren" are one class; blank means absent.
        out[role] = [(v.strip() or None) if v is not None else None for v in values]
    if label_column is not None:
        _require_one_label_kind(path, label_column, out["label"], rows)
    return pa.table(out, schema=IMAGES_SCHEMA)


def scan_folder(folder: str) -> tuple[pa.Table, str]:
    """The `images` table of a tree with one sub-folder per class (label = top sub-folder), and
    the sha256 of its sorted listing (relative path and size of each image)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder} not found")
    root = os.path.abspath(folder)
    found: list[list[str]] = []  # relative paths, split into components
    for directory, subdirs, files in os.walk(root, followlinks=True):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        relative = os.path.relpath(directory, root)
        parts = [] if relative == "." else relative.split(os.sep)
        found.extend(
            [*parts, f] for f in files if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        )
    loose = sorted(parts[0] for parts in found if len(parts) == 1)
    if loose:
        raise ValueError(
            f"{folder}: images directly in the folder belong to no class sub-folder ({len(loose)}, "
            f"e.g. {loose[:EXAMPLES]}); move each into a sub-folder named after its class"
        )
    if not found:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in its sub-folders")
    found.sort()
    digest = hashlib.sha256()
    paths = []
    for parts in found:
        paths.append(os.path.join(root, *parts))
        digest.update(f"{'/'.join(parts)}\t{os.path.getsize(paths[-1])}\n".encode())
    table = pa.table({"path": paths, "label": [p[0] for p in found], "split": [None] * len(found)}, schema=IMAGES_SCHEMA)
    return table, digest.hexdigest()


@method("data.scan")
def scan(worker: Worker, params: dict[str, Any], tables: Tables) -> tuple[dict[str, Any], Tables]:
    table_path, folder = params.get("table"), params.get("folder")
    if (table_path is None) == (folder is None):
        raise ValueError("data.scan needs exactly one of `table` (a CSV/TSV/Parquet file) or `folder`")
    if table_path is not None:
        images = scan_table(
            table_path, params.get("image_root"), params["path_column"], params.get("label_column"), params.get("split_column")
        )
        source, sha256 = table_path, sha256_file(table_path)
    else:
        images, sha256 = scan_folder(folder)
        source = folder
    return {"rows": images.num_rows, "source": source, "sha256": sha256}, {"images": images}


# --- reading image files -------------------------------------------------------


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


def die_with_worker(_: int) -> None:
    """DataLoader `worker_init_fn`: a loader process ends the moment the worker does.

    torch's loader processes notice a dead parent only every 5 s; until then they are left
    behind and hold the worker's pipes open, so the orchestrator cannot finish.
    """
    die_with_parent()


def _reason_only(image: Image.Image) -> None:
    """The check needs no pixels back from the loader processes."""


def _bad_only(items: list[tuple[int, Any]]) -> list[tuple[int, str]]:
    return [(i, x.reason) for i, x in items if isinstance(x, BadImage)]


@method("data.check")
def check(worker: Worker, params: dict[str, Any], tables: Tables) -> dict[str, Any]:
    """Decodes every image of table `images` (id, path) as embedding would, and lists those that
    cannot be read, so a bad file is found before training rather than after it."""
    from torch.utils.data import DataLoader

    images = tables.get("images")
    if images is None or not {"id", "path"} <= set(images.schema.names):
        raise ValueError("data.check needs a table `images` with columns id and path")
    ids, paths = images["id"].to_pylist(), images["path"].to_pylist()
    loader = DataLoader(
        ImageDataset(paths, _reason_only),
        batch_size=256,
        num_workers=params["loader_workers"],
        collate_fn=_bad_only,
        worker_init_fn=die_with_worker,
    )
    bad = [{"id": ids[i], "path": paths[i], "reason": reason} for batch in loader for i, reason in batch]
    return {"checked": len(paths), "bad": sorted(bad, key=lambda b: b["id"])}

