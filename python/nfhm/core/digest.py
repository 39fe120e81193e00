"""File checksums: a collection table's and a weights file's identity in cache keys, and the
state of a collection's image files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable


# Checksums by (real path, size, mtime in ns): a file is read once per process while it stays the
# same, as sha256_stats judges change. Resolving, describing and keying one model each ask for
# its weights' checksum, which is seconds of reading for a ViT-L file.
_known: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _known:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _known[key] = digest.hexdigest()
    return _known[key]


def sha256_if_file(path: str | None) -> str | None:
    """A weights file's checksum; None when there is no file (random init, a named weight set)."""
    return sha256_file(path) if path is not None and os.path.isfile(path) else None


def sha256_stats(paths: Iterable[str]) -> str:
    """sha256 of each file's path, size and modification time (ns). A file replaced or changed in
    place changes it; one stat per file, no file read, so it is cheap for a whole collection."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = os.stat(path)
            state = f"{stat.st_size}\t{stat.st_mtime_ns}"
        except OSError as e:
            state = f"unreadable: {e.strerror}"  # data.check names it; here it only has to differ
        digest.update(f"{path}\t{state}\n".encode())
    return digest.hexdigest()
