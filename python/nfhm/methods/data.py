"""`data.scan` and `data.check`: a collection's image list, and which of its files cannot be read."""

from __future__ import annotations

from typing import Any

from PIL import Image

from ..core.collection import scan_folder, scan_table
from ..core.digest import sha256_file, sha256_stats
from ..core.images import BadImage, ImageDataset
from ..core.lifetime import die_with_this_process
from ..core.user_input import users_input
from .handler import Handler, Result, Tables
from .state import WorkerState


def scan(
    state: WorkerState,
    tables: Tables,
    *,
    table: str | None,
    folder: str | None,
    image_root: str | None,
    path_column: str,
    label_column: str | None,
    split_column: str | None,
    group_column: str | None,
    label_type: str,
) -> tuple[Result, Tables]:
    if (table is None) == (folder is None):
        raise ValueError("data.scan needs exactly one of `table` (a CSV/TSV/Parquet file) or `folder`")
    try:
        if table is not None:
            images = scan_table(table, image_root, path_column, label_column, split_column, group_column, label_type)
            source, sha256, skipped = table, sha256_file(table), []
        else:
            images, sha256, skipped = scan_folder(folder)
            source = folder
    except (ValueError, OSError) as e:
        # Scanning reads nothing but the user's table or folder, and each error names it.
        raise users_input(e)
    return {"rows": images.num_rows, "source": source, "sha256": sha256, "skipped_folders": skipped}, {"images": images}


def _reason_only(image: Image.Image) -> None:
    """The check needs no pixels back from the loader processes."""


def _bad_only(items: list[tuple[int, Any]]) -> list[tuple[int, str]]:
    return [(i, x.reason) for i, x in items if isinstance(x, BadImage)]


def check(state: WorkerState, tables: Tables, *, loader_workers: int) -> Result:
    """Decodes every image of table `images` (id, path) as embedding would, and lists those that
    cannot be read, so a bad file is found before training rather than after it."""
    from torch.utils.data import DataLoader

    images = tables["images"]
    ids, paths = images["id"].to_pylist(), images["path"].to_pylist()
    loader = DataLoader(
        ImageDataset(paths, _reason_only),
        batch_size=256,
        num_workers=loader_workers,
        collate_fn=_bad_only,
        worker_init_fn=die_with_this_process(),
    )
    bad = [{"id": ids[i], "path": paths[i], "reason": reason} for batch in loader for i, reason in batch]
    return {"checked": len(paths), "bad": sorted(bad, key=lambda b: b["id"])}


def stat(state: WorkerState, tables: Tables) -> Result:
    """The sha256 of the size and modification time of every file of table `images` (id, path):
    cached embeddings of these files are reused only while it stays the same."""
    return {"files": tables["images"].num_rows, "sha256": sha256_stats(tables["images"]["path"].to_pylist())}


METHODS: dict[str, Handler] = {"data.scan": scan, "data.check": check, "data.stat": stat}
