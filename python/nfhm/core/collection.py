"""A collection's image list: a table (CSV, TSV or Parquet) with an image-path column and
optional label, split and group (query/gallery) columns, or a folder tree with one sub-folder
per class. Both become a table of layout `scanned_images` (path, label, split, group). Labels are
names (stripped text) unless the label type is "number". Every problem a user can fix names the
file, the config field and the rows.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DELIMITERS = {".csv": ",", ".tsv": "\t"}  # text tables; ".parquet" is the binary one
EXAMPLES = 5  # rows named in one error message
IMAGES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("split", pa.string()),
        pa.field("group", pa.string()),
    ]
)
# The config field that names each role's column, for errors.
COLUMN_FIELDS = {
    "path": "data.path_column",
    "label": "data.label_column",
    "split": "data.split.column",
    "group": "eval.protocol.column",
}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


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


def _as_numbers(path: str, column: str, labels: list[str | None], rows: RowNumbers) -> list[str | None]:
    """Number labels in one spelling per value ("+1", "1" and "1.0" are one class); text is refused."""
    textual = [i for i, v in enumerate(labels) if v is not None and not _NUMBER.fullmatch(v)]
    if textual:
        raise ValueError(
            f"{path}: column {column!r} holds text where data.label_type is 'number' ({rows.note}): "
            f"{rows.name(textual)} (e.g. {labels[textual[0]]!r}). Set data.label_type: name to use "
            "every label as a name"
        )
    return [None if v is None else _canonical_number(float(v)) for v in labels]


def _canonical_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def scan_table(
    path: str,
    image_root: str | None,
    path_column: str,
    label_column: str | None,
    split_column: str | None,
    group_column: str | None,
    label_type: str,
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
    wanted = {"path": path_column, "label": label_column, "split": split_column, "group": group_column}
    for role, column in wanted.items():
        if column is not None and column not in available:
            raise ValueError(f"{path}: no column {column!r} ({COLUMN_FIELDS[role]}); the columns are {available}")
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
    for role in ("label", "split", "group"):
        column = wanted[role]
        values = _as_text(table[column]).to_pylist() if column is not None else [None] * table.num_rows
        # Stripped, so "wren " and "wren" are one class; blank means absent.
        out[role] = [(v.strip() or None) if v is not None else None for v in values]
    if label_column is not None and label_type == "number":
        out["label"] = _as_numbers(path, label_column, out["label"], rows)
    return pa.table(out, schema=IMAGES_SCHEMA)


def _class_tree(root: str) -> tuple[list[list[str]], list[dict[str, str]]]:
    """The image files under `root` (relative paths, split into components), following links to
    folders, and the links not followed (path, reason). Each real folder is entered once: a link
    back to a folder that contains it (a loop) would list its images again and again, and a
    second path to one folder would list them twice. The tree's own folders are walked before
    any link, so a folder's images keep the class of their real path."""
    seen: dict[tuple[int, int], str] = {}
    skipped: list[dict[str, str]] = []
    found: list[list[str]] = []

    def first_visit(path: str) -> bool:
        first = seen.setdefault(_identity(path), path)
        if first == path:
            return True
        if (path + os.sep).startswith(first.rstrip(os.sep) + os.sep):
            skipped.append({"path": path, "reason": f"a link back to {first}, which contains it (a loop); not followed"})
        else:
            skipped.append({"path": path, "reason": f"the same folder as {first}, whose images are listed once, there"})
        return False

    tops = [root]
    while tops:
        links = []
        for top in tops:
            if not first_visit(top):
                continue
            for directory, subdirs, files in os.walk(top):
                names = sorted(d for d in subdirs if not d.startswith("."))
                paths = [os.path.join(directory, d) for d in names]
                links.extend(p for p in paths if os.path.islink(p))  # walked in the next round
                # A bind mount can repeat a folder without any link.
                subdirs[:] = [d for d, p in zip(names, paths) if not os.path.islink(p) and first_visit(p)]
                relative = os.path.relpath(directory, root)
                parts = [] if relative == "." else relative.split(os.sep)
                found.extend(
                    [*parts, f] for f in files if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
                )
        tops = sorted(links)
    return found, skipped


def _identity(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def scan_folder(folder: str) -> tuple[pa.Table, str, list[dict[str, str]]]:
    """The `images` table of a tree with one sub-folder per class (label = top sub-folder), the
    sha256 of its sorted listing (relative path and size of each image), and the folders skipped
    as loops or repeats (path, reason)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder} not found")
    root = os.path.abspath(folder)
    found, skipped = _class_tree(root)
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
    none = [None] * len(found)
    table = pa.table({"path": paths, "label": [p[0] for p in found], "split": none, "group": none}, schema=IMAGES_SCHEMA)
    return table, digest.hexdigest(), skipped
