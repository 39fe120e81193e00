"""Atomic writes (nfhm.atomic): a write that fails leaves the earlier file as it was and no
temporary file, and a failure for lack of room says so, naming the file, whoever was writing."""

from __future__ import annotations

import errno
import os
import resource
from types import SimpleNamespace

import pytest
import torch

from nfhm.core import atomic
from nfhm.core.atomic import NoRoomError, atomic_path


@pytest.fixture
def earlier(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"the earlier checkpoint")
    return path


def test_torch_save_over_the_file_size_limit_is_named_and_the_earlier_file_kept(earlier):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, hard))  # Python ignores SIGXFSZ: writes fail with EFBIG
    try:
        with pytest.raises(NoRoomError) as caught, atomic_path(earlier) as tmp:
            torch.save({"w": torch.zeros(1 << 18)}, tmp)  # 1 MB; torch reports the failure without an errno
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(caught.value) == (
        f"cannot write {earlier}: the file is larger than the file-size limit (ulimit -f) of 65,536 bytes; "
        "raise the limit, then rerun: finished work is kept"
    )
    assert earlier.read_bytes() == b"the earlier checkpoint"
    assert os.listdir(earlier.parent) == ["checkpoint.pt"]


def test_a_full_device_is_named(earlier):
    with pytest.raises(NoRoomError, match=rf"^cannot write {earlier}: no space left on the device that holds {earlier.parent} "):
        with atomic_path(earlier) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", tmp)
    assert earlier.read_bytes() == b"the earlier checkpoint"


def test_an_errno_less_failure_on_a_full_device_is_named(earlier, monkeypatch):
    monkeypatch.setattr(atomic.os, "statvfs", lambda _: SimpleNamespace(f_bavail=3, f_frsize=4096))
    with pytest.raises(NoRoomError, match="no space left on the device"):
        with atomic_path(earlier):
            raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file")


def test_other_failures_pass_through_unchanged(earlier):
    with pytest.raises(ValueError, match="^not about room$"), atomic_path(earlier):
        raise ValueError("not about room")
    assert earlier.read_bytes() == b"the earlier checkpoint"
    assert os.listdir(earlier.parent) == ["checkpoint.pt"]
