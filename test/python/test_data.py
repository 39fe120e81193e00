"""data.scan (tables and folder trees, and their errors) and the reading of real image files."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader

from nfhm.core.images import BadImage, ImageDataset, collate_images, open_rgb
from nfhm.core.transforms import EvalTransform
from worker_calls import call, call_error

SCAN = {
    "table": None,
    "folder": None,
    "image_root": None,
    "path_column": "path",
    "label_column": None,
    "split_column": None,
    "group_column": None,
    "label_type": "name",
}


def write_csv(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def scan(**params):
    return call("data.scan", {**SCAN, **params})


# --- tables --------------------------------------------------------------------


def test_csv_joins_relative_paths_to_image_root_and_keeps_absolute_ones(tmp_path):
    table = write_csv(
        tmp_path / "images.csv",
        "file,species,split\nimg/a.jpg,3,train\n/abs/b.png, 17 ,\nimg/c.jpg,,test \n",
    )
    result, tables = scan(table=table, image_root="/data/root", path_column="file", label_column="species", split_column="split")
    images = tables["images"]
    sha256 = hashlib.sha256((tmp_path / "images.csv").read_bytes()).hexdigest()
    assert result == {"rows": 3, "source": table, "sha256": sha256, "skipped_folders": []}
    assert images.schema.field("path").type == pa.string()
    assert images.to_pylist() == [
        {"path": "/data/root/img/a.jpg", "label": "3", "split": "train", "group": None},
        {"path": "/abs/b.png", "label": "17", "split": None, "group": None},
        {"path": "/data/root/img/c.jpg", "label": None, "split": "test", "group": None},
    ]


def test_relative_paths_default_to_the_tables_folder_and_labels_become_strings(tmp_path):
    path = tmp_path / "meta.parquet"
    pq.write_table(pa.table({"path": ["x/1.png", "2.png"], "label": [4, 5], "other": [1.5, 2.5]}), path)
    _, tables = scan(table=str(path), label_column="label")
    assert tables["images"].to_pylist() == [
        {"path": str(tmp_path / "x" / "1.png"), "label": "4", "split": None, "group": None},
        {"path": str(tmp_path / "2.png"), "label": "5", "split": None, "group": None},
    ]


def test_integer_labels_stored_as_floats_read_as_integers(tmp_path):
    # pandas writes an int column with missing values as float64.
    path = tmp_path / "meta.parquet"
    pq.write_table(pa.table({"path": ["a.png", "b.png"], "label": [3.0, None]}), path)
    _, tables = scan(table=str(path), label_column="label")
    assert tables["images"]["label"].to_pylist() == ["3", None]


def test_a_csv_with_a_byte_order_mark_and_numeric_looking_paths_reads_as_text(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffpath,label\n0001,cat\n0002,dog\n".encode())
    _, tables = scan(table=str(path), label_column="label", image_root="/r")
    assert tables["images"]["path"].to_pylist() == ["/r/0001", "/r/0002"]


@pytest.mark.parametrize(
    ("params", "kind", "expected"),
    [
        ({"table": "/nowhere/images.csv"}, "FileNotFoundError", ["/nowhere/images.csv", "not found"]),
        ({"table": "TABLE.xlsx"}, "ValueError", ["TABLE.xlsx", "'.xlsx'", ".csv", ".parquet"]),
        ({"table": "TABLE", "path_column": "filename"}, "ValueError", ["TABLE", "'filename'", "['path', 'label']"]),
        (
            {"table": "TABLE", "label_column": "species"},
            "ValueError",
            ["TABLE", "no column 'species' (data.label_column)", "['path', 'label']"],
        ),
        ({"table": "TABLE", "split_column": "fold"}, "ValueError", ["TABLE", "no column 'fold' (data.split.column)"]),
        ({"table": "TABLE", "group_column": "domain"}, "ValueError", ["TABLE", "no column 'domain' (eval.protocol.column)"]),
        ({"table": None}, "ValueError", ["exactly one of"]),
        ({"table": "TABLE", "folder": "/x"}, "ValueError", ["exactly one of"]),
    ],
)
def test_table_errors_name_the_file_and_the_column(tmp_path, params, kind, expected):
    table = write_csv(tmp_path / "t.csv", "path,label\na.png,1\n")
    if params.get("table") == "TABLE":
        params = {**params, "table": table}
    elif params.get("table") == "TABLE.xlsx":
        params = {**params, "table": str(tmp_path / "t.xlsx")}
        expected = [e.replace("TABLE.xlsx", "t.xlsx") for e in expected]
    error = call_error("data.scan", {**SCAN, **params})
    assert error["type"] == kind
    for text in expected:
        assert text.replace("TABLE", table) in error["message"]
    # The user's table is bad input (exit 3); a call that breaks data.scan's own rule is not.
    assert error["bad_input"] is ("exactly one of" not in expected)


def test_an_empty_table_is_an_error(tmp_path):
    table = write_csv(tmp_path / "empty.csv", "path,label\n")
    error = call_error("data.scan", {**SCAN, "table": table})
    assert table in error["message"] and "no data rows" in error["message"]


def test_duplicate_paths_name_the_spreadsheet_rows_and_the_path(tmp_path):
    table = write_csv(tmp_path / "dup.csv", "path\na.png\nb.png\n./a.png\nc.png\nb.png\n")
    message = call_error("data.scan", {**SCAN, "table": table})["message"]
    assert table in message and "'path'" in message
    # Spreadsheet rows (header = row 1): a.png in rows 2 and 4, b.png in rows 3 and 6.
    assert f"rows 2, 4: {tmp_path / 'a.png'}" in message
    assert f"rows 3, 6: {tmp_path / 'b.png'}" in message
    assert "header is row 1" in message


def test_duplicate_paths_in_parquet_count_data_rows_from_1(tmp_path):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table({"path": ["a.png", "b.png", "a.png"]}), path)
    message = call_error("data.scan", {**SCAN, "table": str(path)})["message"]
    assert "rows 1, 3" in message and "counted from 1" in message


def test_missing_paths_name_the_rows(tmp_path):
    table = write_csv(tmp_path / "holes.csv", 'path,label\na.png,1\n,2\n"  ",3\nd.png,4\n')
    message = call_error("data.scan", {**SCAN, "table": table})["message"]
    assert table in message and "'path'" in message and "rows 3, 4" in message


def test_labels_are_names_numbers_and_text_alike(tmp_path):
    rows = "a.png,+1,x\nb.png,-1,y\nc.png,100,x\nd.png,1,y\ne.png,cat,\nf.png, ,x\n"
    table = write_csv(tmp_path / "names.csv", "path,label,domain\n" + rows)
    images = scan(table=table, label_column="label", group_column="domain")[1]["images"]
    # "+1" and "1" are two names; a blank label is no label.
    assert images["label"].to_pylist() == ["+1", "-1", "100", "1", "cat", None]
    assert images["group"].to_pylist() == ["x", "y", "x", "y", None, "x"]


def test_number_labels_are_one_class_per_value_and_refuse_text(tmp_path):
    rows = "a.png,+1\nb.png,1.0\nc.png,-1\nd.png,1e2\ne.png,0.5\nf.png,\n"
    table = write_csv(tmp_path / "numbers.csv", "path,label\n" + rows)
    images = scan(table=table, label_column="label", label_type="number")[1]["images"]
    assert images["label"].to_pylist() == ["1", "1", "-1", "100", "0.5", None]
    table = write_csv(tmp_path / "mixed.csv", "path,label\na.png,1\nb.png,2.5\nc.png,cat\nd.png,\n")
    params = {**SCAN, "table": table, "label_column": "label", "label_type": "number"}
    message = call_error("data.scan", params)["message"]
    assert table in message and "'label'" in message and "data.label_type is 'number'" in message
    assert "row 4 (e.g. 'cat')" in message and "data.label_type: name" in message


def test_unreadable_tables_are_reported_with_their_name(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("path\ncaf\xe9.png\n".encode("latin-1"))
    message = call_error("data.scan", {**SCAN, "table": str(path)})["message"]
    assert str(path) in message and "UTF-8" in message
    path = tmp_path / "broken.parquet"
    path.write_text("not parquet")
    assert f"{path}: cannot read the table" in call_error("data.scan", {**SCAN, "table": str(path)})["message"]


# --- folder trees ----------------------------------------------------------------


def test_folder_tree_labels_come_from_sub_folders_sorted(tmp_path):
    for rel in ["b/2.PNG", "b/1.jpg", "a/z/deep.webp", "a/x.TIFF", "a/notes.txt", "a/.hidden.png", ".cache/c.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * len(rel))
    result, tables = scan(folder=str(tmp_path))
    assert tables["images"].to_pylist() == [
        {"path": str(tmp_path / "a/x.TIFF"), "label": "a", "split": None, "group": None},
        {"path": str(tmp_path / "a/z/deep.webp"), "label": "a", "split": None, "group": None},
        {"path": str(tmp_path / "b/1.jpg"), "label": "b", "split": None, "group": None},
        {"path": str(tmp_path / "b/2.PNG"), "label": "b", "split": None, "group": None},
    ]
    assert result["rows"] == 4 and result["source"] == str(tmp_path)
    assert scan(folder=str(tmp_path))[0]["sha256"] == result["sha256"]
    (tmp_path / "b/3.png").write_bytes(b"new")
    assert scan(folder=str(tmp_path))[0]["sha256"] != result["sha256"]


def test_folder_tree_links_are_followed_into_each_real_folder_once(tmp_path):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    for folder, n in [(tree / "cat", 20), (tree / "dog", 20), (tree / "eel" / "young", 10), (outside, 10)]:
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"{i}.png").write_bytes(b"x")
    (tree / "eel" / "old").symlink_to(outside)  # a class kept on another disk: followed
    (tree / "cat" / "again").symlink_to(tree)  # two loops: each would list the tree again, without end
    (tree / "dog" / "back").symlink_to(tree / "dog")
    (tree / "fish").symlink_to(tree / "eel" / "young")  # a second path to one folder
    result, tables = scan(folder=str(tree))
    labels = tables["images"]["label"].to_pylist()
    assert result["rows"] == 60 and {label: labels.count(label) for label in set(labels)} == {"cat": 20, "dog": 20, "eel": 20}
    assert result["skipped_folders"] == [
        {"path": str(tree / "cat" / "again"), "reason": f"a link back to {tree}, which contains it (a loop); not followed"},
        {"path": str(tree / "dog" / "back"), "reason": f"a link back to {tree / 'dog'}, which contains it (a loop); not followed"},
        {"path": str(tree / "fish"), "reason": f"the same folder as {tree / 'eel' / 'young'}, whose images are listed once, there"},
    ]


def test_folder_errors(tmp_path):
    error = call_error("data.scan", {**SCAN, "folder": str(tmp_path / "missing")})
    assert error["type"] == "FileNotFoundError" and str(tmp_path / "missing") in error["message"]
    (tmp_path / "loose.jpg").write_bytes(b"x")
    message = call_error("data.scan", {**SCAN, "folder": str(tmp_path)})["message"]
    assert "loose.jpg" in message and "sub-folder" in message
    (tmp_path / "loose.jpg").unlink()
    (tmp_path / "cls").mkdir()
    assert "no image files" in call_error("data.scan", {**SCAN, "folder": str(tmp_path)})["message"]


# --- image files ---------------------------------------------------------------------


@pytest.fixture
def image_files(tmp_path):
    """Real files of every kind a collection holds, good and bad: {name: path}."""
    rng = np.random.default_rng(0)
    files = {name: str(tmp_path / name) for name in [
        "rgb.png", "rgb.jpg", "grey.png", "cmyk.jpg", "cmyk.tif", "sixteen.png", "palette.png", "rgba.png",
        "truncated.jpg", "zero.jpg", "text.jpg", "missing.jpg",
    ]}
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(files["rgb.png"])
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(files["rgb.jpg"], quality=95)
    Image.fromarray(np.full((20, 20), 77, np.uint8)).save(files["grey.png"])
    cmyk = Image.frombytes("CMYK", (24, 24), rng.integers(0, 256, (24, 24, 4), dtype=np.uint8).tobytes())
    cmyk.save(files["cmyk.jpg"])
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(files["cmyk.tif"])  # pure cyan
    sixteen = np.tile(np.array([0, 257, 32896, 65535], np.uint16), (4, 1))
    Image.fromarray(sixteen).save(files["sixteen.png"])
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(files["palette.png"])
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (10, 20, 30, 0)  # transparent: whatever colour is stored, a viewer shows the background
    Image.fromarray(rgba, "RGBA").save(files["rgba.png"])
    data = open(files["rgb.jpg"], "rb").read()
    open(files["truncated.jpg"], "wb").write(data[: len(data) // 2])
    open(files["zero.jpg"], "wb").close()
    open(files["text.jpg"], "w").write("species,count\nwren,3\n")
    return files


BAD_REASONS = {
    "truncated.jpg": "truncated or damaged",
    "zero.jpg": "empty file (0 bytes)",
    "text.jpg": "not an image",
    "missing.jpg": "file not found",
}


def test_modes_convert_to_rgb_without_clipping_or_garbage(image_files):
    assert np.array(open_rgb(image_files["grey.png"]))[0, 0].tolist() == [77, 77, 77]
    # 16-bit is scaled (65535 -> 255), not clipped at 255.
    assert np.array(open_rgb(image_files["sixteen.png"]))[0, :, 0].tolist() == [0, 1, 128, 255]
    palette = np.array(open_rgb(image_files["palette.png"]))
    assert palette[0, 0].tolist() == [255, 0, 0] and palette[1, 1].tolist() == [0, 255, 0]
    rgba = np.array(open_rgb(image_files["rgba.png"]))
    assert rgba[0, 0].tolist() == [10, 20, 30] and rgba[0, 1].tolist() == [255, 255, 255]
    assert np.array(open_rgb(image_files["cmyk.tif"]))[0, 0].tolist() == [0, 255, 255]
    cmyk = open_rgb(image_files["cmyk.jpg"])
    assert cmyk.mode == "RGB" and cmyk.size == (24, 24)


def test_exif_orientation_is_applied(tmp_path):
    path = str(tmp_path / "phone.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers rotate it 90 degrees clockwise
    Image.new("RGB", (20, 10)).save(path, exif=exif)
    assert open_rgb(path).size == (10, 20)


def test_truncated_files_are_bad_even_if_someone_allowed_them(image_files, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    index, item = ImageDataset([image_files["truncated.jpg"]], EvalTransform(28))[0]
    assert index == 0 and isinstance(item, BadImage) and "truncated" in item.reason


def test_images_over_the_pixel_limit_are_bad(image_files):
    _, item = ImageDataset([image_files["rgb.jpg"]], EvalTransform(28), max_pixels=64 * 64 - 1)[0]
    assert isinstance(item, BadImage) and "too large: 64 x 64" in item.reason


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataloader_lists_every_bad_file_and_returns_the_good_ones(image_files, workers):
    names = list(image_files)
    transform = EvalTransform(28)
    loader = DataLoader(
        ImageDataset([image_files[n] for n in names], transform),
        batch_size=5,
        num_workers=workers,
        collate_fn=collate_images,
    )
    good, bad = {}, {}
    for batch in loader:
        bad.update(batch.bad)
        if batch.images is not None:
            assert batch.images.shape == (len(batch.indices), 3, 28, 28)
            good.update(zip(batch.indices, batch.images))
    assert {names[i]: reason for i, reason in bad.items()}.keys() == BAD_REASONS.keys()
    for i, reason in bad.items():
        assert BAD_REASONS[names[i]] in reason
    assert sorted(good) == [i for i, n in enumerate(names) if n not in BAD_REASONS]
    for i, tensor in good.items():
        torch.testing.assert_close(tensor, transform(open_rgb(image_files[names[i]])), rtol=0, atol=0)


def test_a_batch_of_only_bad_items_has_no_tensor():
    batch = collate_images([(0, BadImage("x")), (1, BadImage("y"))])
    assert batch.images is None and batch.indices == [] and batch.bad == [(0, "x"), (1, "y")]


def test_a_folder_path_is_a_bad_image(tmp_path):
    os.mkdir(tmp_path / "dir.jpg")
    _, item = ImageDataset([str(tmp_path / "dir.jpg")], EvalTransform(28))[0]
    assert isinstance(item, BadImage) and "folder" in item.reason


@pytest.mark.parametrize("workers", [0, 2])
def test_data_check_lists_exactly_the_unreadable_files_by_id(image_files, workers):
    names = list(image_files)
    ids = [100 + 3 * i for i in range(len(names))]  # ids are the run's, not positions
    images = pa.table({"id": pa.array(ids, pa.int32()), "path": [image_files[n] for n in names]})
    result, _ = call("data.check", {"loader_workers": workers}, {"images": images})
    assert result["checked"] == len(names)
    expected = [(ids[i], image_files[n]) for i, n in enumerate(names) if n in BAD_REASONS]
    assert [(b["id"], b["path"]) for b in result["bad"]] == expected
    for b in result["bad"]:
        assert BAD_REASONS[os.path.basename(b["path"])] in b["reason"]
