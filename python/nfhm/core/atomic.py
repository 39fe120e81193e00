"""Files appear under their final name only when complete.

A killed process leaves at most a `*.tmp-<pid>` file behind, never a
half-written file that looks finished. A write that fails for lack of room
(a full disk, a quota, the file-size limit of `ulimit -f`) is reported as
such, naming the file, whichever library was writing it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Iterator

NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Free space below this after a failed write means the device filled up.
NEARLY_FULL_BYTES = 1 << 20


class NoRoomError(OSError):
    """A file could not be written for lack of room; the message names the file and what to do."""


def _lack_of_room(error: BaseException, tmp: str) -> str | None:
    """Why writing `tmp` failed, when the reason is room; None otherwise.

    torch.save reports a failed write as a RuntimeError without an errno, so the file-size
    limit and the free space are checked as well.
    """
    code = error.errno if isinstance(error, OSError) and error.errno in NO_ROOM else None
    written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if code == errno.EFBIG or (limit != resource.RLIM_INFINITY and written >= limit):
        return f"the file is larger than the file-size limit (ulimit -f) of {limit:,} bytes; raise the limit"
    folder = os.path.dirname(os.path.abspath(tmp))
    stat = os.statvfs(folder)
    if code is not None or stat.f_bavail * stat.f_frsize < NEARLY_FULL_BYTES:
        return f"no space left on the device that holds {folder} (or its quota is used up); free some space"
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yields a temporary path next to `path` (its folder created); renames it over `path` on success."""
    final = os.fspath(path)
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    tmp = f"{final}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, final)
    except Exception as e:
        reason = _lack_of_room(e, tmp)
        if reason is None:
            raise
        raise NoRoomError(f"cannot write {final}: {reason}, then rerun: finished work is kept") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
