"""File checksums: a collection table's and a weights file's identity in cache keys, and the
state of a collection's image files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
