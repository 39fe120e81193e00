"""Embeddings files and vector indexes (`nfhm embed` / `nfhm index`): what is written reads back
the same in pyarrow and pandas, errors name the file, and the HNSW recall is numpy's count."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nfhm.core.embeddings_file import embeddings_table, read_embeddings_file, write_embeddings_file
from nfhm.core.shards import l2_normalize
from nfhm.core.vector_index import Hnsw, build_index, read_index, recall_against_exact, write_index, write_sidecar


@pytest.mark.parametrize("ext", [".parquet", ".arrow"])
def test_an_embeddings_file_reads_back_exactly_in_pyarrow_and_pandas(tmp_path, ext: str) -> None:
    vectors = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    path = str(tmp_path / f"e{ext}")
    write_embeddings_file(path, embeddings_table([f"/i/{i}.png" for i in range(5)], ["a", None, "b", "a", "c"], vectors, {"k": 1}))
    back = read_embeddings_file(path)
    assert back.paths == [f"/i/{i}.png" for i in range(5)] and back.labels == ["a", None, "b", "a", "c"]
    np.testing.assert_array_equal(back.vectors, vectors)  # bit for bit: float32 stored as float32
    assert back.metadata == {"k": 1}
    frame = pd.read_parquet(path) if ext == ".parquet" else pd.read_feather(path)
    np.testing.assert_array_equal(np.stack(frame["embedding"]), vectors)


def test_files_not_written_by_nfhm_embed_are_refused_naming_them(tmp_path) -> None:
    plain = str(tmp_path / "plain.parquet")
    pq.write_table(embeddings_table(["/a"], None, np.ones((1, 2), np.float32), {}).replace_schema_metadata({}), plain)
    with pytest.raises(ValueError, match=f"{plain}: no `nfhm` metadata"):
        read_embeddings_file(plain)
    with pytest.raises(ValueError, match=r"e\.csv: an embeddings file is \.parquet or \.arrow"):
        read_embeddings_file(str(tmp_path / "e.csv"))


def test_exact_search_is_numpys_and_hnsw_recall_is_counted_against_it(tmp_path) -> None:
    # Clustered points, so a tiny HNSW graph misses some true neighbours.
    rng = np.random.default_rng(1)
    vectors = l2_normalize((rng.standard_normal((20, 16)).repeat(30, axis=0) + 0.3 * rng.standard_normal((600, 16))).astype(np.float32))
    truth = np.argsort(-(vectors.astype(np.float64) @ vectors.T.astype(np.float64)), axis=1, kind="stable")[:, :10]
    exact = build_index(vectors, None)
    _, found = exact.search(vectors, 10)
    assert np.mean([len(set(t) & set(f)) for t, f in zip(truth, found)]) == pytest.approx(10, abs=0.05)  # ties only

    hnsw = build_index(vectors, Hnsw(m=2, ef_construction=4, ef_search=2))
    recall, queries = recall_against_exact(hnsw, vectors, sample=1000, seed=0)
    _, approximate = hnsw.search(vectors, 10)
    assert queries == 600
    assert recall == pytest.approx(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, approximate)]), abs=2e-3)
    assert recall < 1

    index_path = str(tmp_path / "i.faiss")
    write_sidecar(index_path, [str(i) for i in range(600)], None, {"rows": 600})
    write_index(index_path, hnsw)
    back = read_index(index_path)
    assert back.index.ntotal == 600 and back.metadata == {"rows": 600} and back.labels is None
    assert json.loads(json.dumps(back.metadata)) == back.metadata
