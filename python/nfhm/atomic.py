"""Files appear under their final name only when complete.

A killed process leaves at most a `*.tmp-<pid>` file behind, never a
half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yields a temporary path next to `path` (its folder created); renames it over `path` on success."""
    final = os.fspath(path)
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    tmp = f"{final}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
