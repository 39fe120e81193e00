"""The worker's built-in methods, one module per RPC area; each depends on nfhm.core only.

`BUILT_IN` gathers the modules' own tables (nfhm/methods/handler.py says what a table holds);
the RPC layer (nfhm/rpc/registry.py) serves them.
"""

from __future__ import annotations

from . import cluster, data, embed, embeddings, files, index, pictures, search, train
from .handler import MethodTable, gather

BUILT_IN: MethodTable = gather((data, embed, embeddings, cluster, search, index, train, files, pictures))
