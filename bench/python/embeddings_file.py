"""Synthetic embedding shards (make_embeddings.py) as an embeddings file, the layout `nfhm embed`
writes (docs/use.md), for bench/search.ts's index.

    python bench/python/embeddings_file.py '{"shards": [...], "labels": "labels.arrow", "out": "x.parquet",
                                              "model_from": "real.parquet"}'

The rows are L2-normalised (metadata `normalized: true`), each named by a made-up path
`synthetic/<id>.png` and labelled with its class. `model_from`: an embeddings file `nfhm embed`
wrote, whose `model` record this file takes, so that `nfhm search` on the index embeds its
queries with that model. Prints {"out", "rows", "dim"} as JSON.
"""

import json
import sys

from nfhm.core.embeddings_file import embeddings_table, read_embeddings_file, write_embeddings_file
from nfhm.core.shards import l2_normalize, read_embeddings
from nfhm.core.table_files import read_table_file


def main() -> None:
    cfg = json.loads(sys.argv[1])
    ids, vectors = read_embeddings(cfg["shards"])
    labels = read_table_file(cfg["labels"])
    label_of = dict(zip(labels["id"].to_pylist(), labels["label"].to_pylist()))
    model = read_embeddings_file(cfg["model_from"]).metadata["model"]
    metadata = {"model": model, "normalized": True, "images": len(ids), "embedding_size": int(vectors.shape[1]), "skipped": []}
    table = embeddings_table(
        [f"synthetic/{i:07d}.png" for i in ids], [str(label_of[int(i)]) for i in ids], l2_normalize(vectors), metadata
    )
    write_embeddings_file(cfg["out"], table)
    print(json.dumps({"out": cfg["out"], "rows": len(ids), "dim": int(vectors.shape[1])}))


if __name__ == "__main__":
    main()
