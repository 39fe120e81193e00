"""pictures.sheet and pictures.map through the worker's dispatch: the sheet shows each image in its
cell with its frame, and the map is scikit-learn's t-SNE of the seeded sample it names."""

from __future__ import annotations

import base64
import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from sklearn.manifold import TSNE, trustworthiness

from nfhm.core.contact_sheet import BORDER, FRAMES, UNREADABLE, Cell, Row, layout_of
from worker_calls import call, call_error, write_shard

COLOURS = [(255, 0, 0), (0, 0, 255), (255, 200, 0), (0, 160, 160), (120, 0, 200), (90, 60, 30)]


def image_list(tmp_path, sizes):
    """One solid-colour PNG per size (width, height), ids 10, 11, ...; its table of ids and paths."""
    paths = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", size, COLOURS[i]).save(path)
        paths.append(str(path))
    return pa.table({"id": pa.array(range(10, 10 + len(paths)), pa.int32()), "path": paths})


def test_sheet_puts_each_image_in_its_cell_with_its_frame(tmp_path):
    images = image_list(tmp_path, [(28, 28), (100, 50), (20, 40), (64, 64), (300, 300)])
    missing = str(tmp_path / "gone.png")
    images = pa.concat_tables([images, pa.table({"id": pa.array([99], pa.int32()), "path": [missing]})])
    headers = ["query", "round 1", "pixels"]
    def cell(id, caption, mark):
        return {"id": id, "caption": caption, "mark": mark}

    rows = [
        {
            "caption": "best: a\nMAP@R 1.00",
            "groups": [
                [cell(10, "a", "query")],
                [cell(11, "a", "right"), cell(12, "b", "wrong")],
                [cell(13, "a", "right")],
            ],
        },
        {"caption": "worst: b", "groups": [[cell(14, "b", "query")], [cell(99, "a", "wrong")], []]},
    ]
    size = 40
    result, _ = call("pictures.sheet", {"headers": headers, "rows": rows, "size": size}, {"images": images})
    sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["png"]))).convert("RGB"))
    assert sheet.shape == (result["height"], result["width"], 3)
    assert result["unreadable"] == 1

    layout = layout_of([Row(r["caption"], [[Cell(**c) for c in g] for g in r["groups"]]) for r in rows], headers, size)
    assert layout.columns == (1, 2, 1)
    inside = BORDER + size // 2  # the middle of a thumbnail (every image here is centred in it)
    for r, row in enumerate(rows):
        for g, group in enumerate(row["groups"]):
            for c, cell in enumerate(group):
                x, y = layout.cell_box(r, g, c)
                assert tuple(sheet[y + 1, x + 1]) == FRAMES[cell["mark"]], (r, g, c)
                expected = UNREADABLE if cell["id"] == 99 else COLOURS[cell["id"] - 10]
                assert tuple(sheet[y + inside, x + inside]) == expected, (r, g, c)
    # An image wider than tall is fitted, not cropped: white above and below it in its square.
    x, y = layout.cell_box(0, 1, 0)
    assert tuple(sheet[y + BORDER + 2, x + inside]) == (255, 255, 255)


def test_sheet_refuses_cells_whose_image_is_not_listed(tmp_path):
    images = image_list(tmp_path, [(8, 8)])
    cells = [{"id": 10, "caption": "", "mark": "query"}, {"id": 7, "caption": "", "mark": "right"}]
    rows = [{"caption": "", "groups": [cells]}]
    error = call_error("pictures.sheet", {"headers": ["q"], "rows": rows, "size": 16}, {"images": images})
    assert "[7]" in error["message"]


def blobs(n_per: int, dim: int = 16, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 4
    labels = np.repeat(np.arange(classes), n_per)
    return (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_map_is_tsne_of_a_seeded_sample(tmp_path):
    x, labels = blobs(100)
    ids = np.arange(1000, 1300)
    shards = [
        write_shard(tmp_path / "a.arrow", ids[:200], x[:200]),
        write_shard(tmp_path / "b.arrow", ids[200:], x[200:]),
    ]
    result, tables = call("pictures.map", {"shards": shards, "points": 120, "seed": 5})
    assert (result["points"], result["of"]) == (120, 300)
    points = tables["points"]
    chosen = points["id"].to_numpy() - 1000
    assert len(set(chosen)) == 120 and np.all(np.diff(chosen) > 0)
    xy = np.column_stack([points["x"].to_numpy(), points["y"].to_numpy()])
    # The same as scikit-learn's own t-SNE of those unit vectors.
    tsne = TSNE(n_components=2, perplexity=30, init="pca", max_iter=500, random_state=5)
    reference = tsne.fit_transform(unit(x[chosen]))
    np.testing.assert_allclose(xy, reference, rtol=1e-4, atol=1e-4)
    # Neighbourhoods survive: each point's nearest point on the map is of its blob.
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
    assert (labels[chosen][d.argmin(axis=1)] == labels[chosen]).mean() > 0.95
    assert trustworthiness(unit(x[chosen]), xy, n_neighbors=5) > 0.9
    again, tables_again = call("pictures.map", {"shards": shards, "points": 120, "seed": 5})
    assert tables_again["points"].equals(points)
    _, other = call("pictures.map", {"shards": shards, "points": 120, "seed": 6})
    assert not np.array_equal(other["points"]["id"].to_numpy(), points["id"].to_numpy())


@pytest.mark.parametrize("n", [2, 7])
def test_map_of_fewer_points_than_asked_takes_them_all(tmp_path, n):
    x, _ = blobs(n, classes=1)
    shard = write_shard(tmp_path / "s.arrow", np.arange(n), x)
    result, tables = call("pictures.map", {"shards": [shard], "points": 2000, "seed": 0})
    assert (result["points"], result["of"]) == (n, n)
    assert np.isfinite(tables["points"]["x"].to_numpy()).all()
