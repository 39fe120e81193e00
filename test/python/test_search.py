"""search.knn against brute force: ids, similarities, self-exclusion, duplicates and ties."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from nfhm.methods import search
from float32 import assert_float32_close
from worker_calls import call, call_error, write_shard


# Float32 cosine similarities (at most 1) against float64 ones: normalising takes a few roundings,
# a dot product of n terms up to n more (Higham); n <= 24 here.
DOT = 32


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(queries, query_ids, gallery, gallery_ids, k, exclude_self):
    """Sort every similarity by (similarity desc, gallery index asc); drop the query's own id."""
    sims = unit(queries).astype(np.float64) @ unit(gallery).astype(np.float64).T
    out_ids, out_sims = [], []
    for row, qid in zip(sims, query_ids):
        order = np.lexsort((np.arange(len(row)), -row))
        if exclude_self:
            order = order[gallery_ids[order] != qid]
        out_ids.append(gallery_ids[order[:k]])
        out_sims.append(row[order[:k]])
    return np.array(out_ids), np.array(out_sims)


def knn(query_shards, gallery_shards, k, exclude_self):
    params = {"query_shards": query_shards, "gallery_shards": gallery_shards, "k": k, "exclude_self": exclude_self}
    result, tables = call("search.knn", params)
    table = tables["neighbors"]
    assert table.schema.field("ids").type == pa.list_(pa.int32(), k)
    assert table.schema.field("similarities").type == pa.list_(pa.float32(), k)
    return result, table["query_id"].to_numpy(), np.array(table["ids"].to_pylist()), np.array(table["similarities"].to_pylist())


@pytest.mark.parametrize("exclude_self", [True, False])
def test_self_search_equals_brute_force(tmp_path, exclude_self, monkeypatch):
    monkeypatch.setattr(search, "QUERY_BLOCK", 64)  # several query blocks
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 24)).astype(np.float32) * rng.uniform(0.5, 3, (300, 1)).astype(np.float32)
    ids = rng.permutation(5000)[:300]
    shards = [write_shard(tmp_path / "a.arrow", ids[:100], x[:100]), write_shard(tmp_path / "b.arrow", ids[100:], x[100:])]
    result, query_ids, got_ids, got_sims = knn(shards, None, 10, exclude_self)
    want_ids, want_sims = brute_force(x, ids, x, ids, 10, exclude_self)
    assert result["queries"] == result["gallery"] == 300 and result["k"] == 10
    np.testing.assert_array_equal(query_ids, ids)
    np.testing.assert_array_equal(got_ids, want_ids)
    assert_float32_close(got_sims, want_sims, DOT, "similarities")
    if not exclude_self:
        np.testing.assert_array_equal(got_ids[:, 0], ids)


def test_a_separate_gallery(tmp_path):
    rng = np.random.default_rng(1)
    queries, gallery = rng.normal(size=(40, 8)), rng.normal(size=(90, 8))
    q = write_shard(tmp_path / "q.arrow", np.arange(40), queries)
    g = write_shard(tmp_path / "g.arrow", np.arange(100, 190), gallery)
    result, _, got_ids, got_sims = knn([q], [g], 90, False)
    want_ids, want_sims = brute_force(queries, np.arange(40), gallery, np.arange(100, 190), 90, False)
    assert result["gallery"] == 90
    np.testing.assert_array_equal(got_ids, want_ids)
    assert_float32_close(got_sims, want_sims, DOT, "similarities")


def test_duplicates_stay_only_the_query_itself_goes_and_ties_go_by_gallery_index(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.normal(size=(5, 6)).astype(np.float32)
    # Gallery index i holds base[i % 5]: every vector has 5 identical copies, interleaved.
    x = base[np.arange(25) % 5]
    ids = np.arange(25)[::-1] + 1000  # ids run opposite to gallery order
    shard = write_shard(tmp_path / "dup.arrow", ids, x)
    _, _, got_ids, got_sims = knn([shard], None, 6, True)
    for row in range(25):
        copies = [i for i in range(row % 5, 25, 5) if i != row]  # gallery indices, ascending
        assert got_ids[row, :4].tolist() == ids[copies].tolist()
        np.testing.assert_allclose(got_sims[row, :4], 1, atol=1e-6)
        assert ids[row] not in got_ids[row]
        assert (np.diff(got_sims[row]) <= 1e-6).all()


@pytest.mark.parametrize("n", [30, 600])  # 600 x 600 takes faiss's BLAS path
def test_at_the_kth_place_ties_keep_the_smaller_gallery_index(tmp_path, n):
    # n copies of one vector: with k=4 (+1 for self) the 5 smallest indices must be kept.
    shard = write_shard(tmp_path / "same.arrow", np.arange(n), np.ones((n, 3)))
    _, _, got_ids, _ = knn([shard], None, 4, True)
    assert got_ids[0].tolist() == [1, 2, 3, 4]
    assert got_ids[2].tolist() == [0, 1, 3, 4]
    assert (got_ids[5:] == [0, 1, 2, 3]).all()  # own id not among the first 5: the last is dropped


def test_k_beyond_the_gallery_is_a_clear_error(tmp_path):
    shard = write_shard(tmp_path / "s.arrow", np.arange(10), np.eye(10))
    params = {"query_shards": [shard], "gallery_shards": None, "k": 10, "exclude_self": True}
    message = call_error("search.knn", params)["message"]
    assert "k=10" in message and "only 9 images other than the query itself" in message
    other = write_shard(tmp_path / "o.arrow", np.arange(3), np.ones((3, 4)))
    message = call_error("search.knn", {**params, "k": 2, "gallery_shards": [other]})["message"]
    assert "10-dimensional" in message and "4" in message
