"""`pictures.sheet` and `pictures.map`: the report's pictures that need the images or the embeddings.

The sheet (the nearest-neighbour grid) comes back as PNG bytes in the result, base64: it is one
picture of a few dozen thumbnails, which the orchestrator writes beside report.md even when the
worker is on another machine. The map's points come back as a table.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import numpy as np
import pyarrow as pa

from ..core.contact_sheet import Cell, Row, contact_sheet
from ..core.embedding_map import sample_rows, tsne_map
from ..core.shards import read_embeddings
from .handler import Handler, Result, Tables
from .state import WorkerState


def sheet(state: WorkerState, tables: Tables, *, headers: list[str], rows: list[dict[str, Any]], size: int) -> Result:
    images = tables["images"]
    paths = dict(zip(images["id"].to_pylist(), images["path"].to_pylist()))
    missing = sorted({cell["id"] for row in rows for group in row["groups"] for cell in group} - paths.keys())
    if missing:
        raise ValueError(f"cells show images {missing[:5]} that the images table does not list")
    drawn = contact_sheet(
        paths,
        headers,
        [Row(row["caption"], [[Cell(**cell) for cell in group] for group in row["groups"]]) for row in rows],
        size,
    )
    png = io.BytesIO()
    drawn.image.save(png, "PNG", optimize=True)
    width, height = drawn.image.size
    encoded = base64.b64encode(png.getvalue()).decode("ascii")
    return {"png": encoded, "width": width, "height": height, "unreadable": drawn.unreadable}


def embedding_map(
    state: WorkerState, tables: Tables, *, shards: list[str], points: int, seed: int
) -> tuple[Result, Tables]:
    started = time.perf_counter()
    ids, vectors = read_embeddings(shards)
    rows = sample_rows(len(ids), points, seed)
    xy = tsne_map(vectors[rows], seed)
    table = pa.table(
        {
            "id": pa.array(ids[rows], type=pa.int32()),
            "x": pa.array(xy[:, 0], type=pa.float32()),
            "y": pa.array(xy[:, 1], type=pa.float32()),
        }
    )
    result = {"points": len(rows), "of": len(ids), "seconds": time.perf_counter() - started}
    return result, {"points": table}


METHODS: dict[str, Handler] = {"pictures.sheet": sheet, "pictures.map": embedding_map}
