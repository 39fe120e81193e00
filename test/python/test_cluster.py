"""cluster.kmeans against faiss called directly, its output files and its warnings."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from nfhm.core.table_files import read_table_file
from worker_calls import call, call_error, write_shard

SETTINGS = {"niter": 8, "nredo": 2, "seed": 123, "max_points_per_centroid": 256, "min_points_per_centroid": 39}


def blobs(n: int, dim: int, centres: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (centres, dim))
    return (means[rng.integers(0, centres, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32)


def kmeans(shards, k, spherical=True, out_dir=None, **overrides):
    params = {"shards": shards, "k": k, "spherical": spherical, "gpu": None, "out_dir": out_dir, **SETTINGS, **overrides}
    return call("cluster.kmeans", params)


@pytest.mark.parametrize("spherical", [True, False])
def test_assignments_are_those_of_faiss_with_the_same_settings(tmp_path, spherical):
    x = blobs(600, 16, 5)
    ids = np.arange(600) * 3 + 11
    half = write_shard(tmp_path / "a.arrow", ids[:250], x[:250]), write_shard(tmp_path / "b.arrow", ids[250:], x[250:])
    result, tables = kmeans(list(half), 6, spherical=spherical, out_dir=str(tmp_path / "km"))

    data = x / np.linalg.norm(x, axis=1, keepdims=True) if spherical else x
    km = faiss.Kmeans(16, 6, spherical=spherical, gpu=False, **SETTINGS)
    km.train(data)
    scores, nearest = km.index.search(data, 1)
    assignments = tables["assignments"]
    assert assignments["id"].to_pylist() == ids.tolist()
    np.testing.assert_array_equal(assignments["cluster"].to_numpy(), nearest[:, 0])
    squared = ((data - km.centroids[nearest[:, 0]]) ** 2).sum(1)
    np.testing.assert_allclose(assignments["distance"].to_numpy(), squared, rtol=1e-4, atol=1e-4)
    assert result["objective"] == pytest.approx(float(km.obj[-1]))
    assert (result["n"], result["dim"], result["k"], result["gpu"], result["trained_on"]) == (600, 16, 6, False, 600)
    assert result["warnings"] == []  # 600 >= 39 * 6

    centroids = np.load(tmp_path / "km" / "centroids.npy")
    assert centroids.shape == (6, 16) and centroids.dtype == np.float32
    np.testing.assert_array_equal(centroids, km.centroids)
    stored = read_table_file(str(tmp_path / "km" / "centroids.arrow"))
    assert stored["centroid"].to_pylist() == list(range(6))
    np.testing.assert_array_equal(np.asarray(stored["vector"].to_pylist(), np.float32), centroids)
    assert read_table_file(str(tmp_path / "km" / "pseudo_labels.arrow")).equals(assignments)
    if spherical:
        np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1, rtol=1e-5)


def test_too_few_points_per_centroid_warns(tmp_path):
    shard = write_shard(tmp_path / "s.arrow", np.arange(100), blobs(100, 8, 3))
    result, _ = kmeans([shard], 5)
    assert len(result["warnings"]) == 1
    assert "only 100 images for K=5" in result["warnings"][0] and "195" in result["warnings"][0]
    result, _ = kmeans([shard], 5, min_points_per_centroid=20)
    assert result["warnings"] == []


def test_subsampling_is_reported_with_the_number_trained_on(tmp_path):
    shard = write_shard(tmp_path / "s.arrow", np.arange(400), blobs(400, 8, 4))
    result, tables = kmeans([shard], 4, max_points_per_centroid=50, min_points_per_centroid=5)
    assert result["trained_on"] == 200
    assert any("random sample of 200 of the 400 images" in w for w in result["warnings"])
    assert tables["assignments"].num_rows == 400


def test_k_larger_than_n_and_bad_shards_are_clear_errors(tmp_path):
    shard = write_shard(tmp_path / "s.arrow", np.arange(10), blobs(10, 4, 2))
    params = {"shards": [shard], "k": 11, "spherical": True, "gpu": None, "out_dir": None, **SETTINGS}
    assert "K=11 is larger than the number of images (n=10)" in call_error("cluster.kmeans", params)["message"]
    again = write_shard(tmp_path / "t.arrow", [9, 10], blobs(2, 4, 1))
    message = call_error("cluster.kmeans", {**params, "k": 2, "shards": [shard, again]})["message"]
    assert "more than once" in message and "[9]" in message
    missing = str(tmp_path / "none.arrow")
    assert missing in call_error("cluster.kmeans", {**params, "shards": [missing]})["message"]
    assert "seed=" in call_error("cluster.kmeans", {**params, "k": 2, "seed": 2**40})["message"]


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="a GPU is present")
def test_asking_for_a_gpu_without_one_is_an_error(tmp_path):
    shard = write_shard(tmp_path / "s.arrow", np.arange(10), blobs(10, 4, 2))
    params = {"shards": [shard], "k": 2, "spherical": True, "gpu": True, "out_dir": None, **SETTINGS}
    assert "no GPU" in call_error("cluster.kmeans", params)["message"]
