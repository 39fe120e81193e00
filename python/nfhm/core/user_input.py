"""Errors in the user's own input, marked so that the orchestrator exits with "bad input" (3)
rather than "worker failure" (4); README, "Exit codes".

A mark, not a class: the exception keeps its type (ValueError, FileNotFoundError), which
messages and callers already name. A class whose every instance is the user's to fix declares
``bad_input = True`` (core/checkpoint.py's CheckpointError); rpc/registry.py's error_reply sends
the mark to the orchestrator.
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


def users_input(exc: E) -> E:
    """`exc`, marked as the user's to fix: their table, image folder, checkpoint or setting, named
    in its message."""
    exc.bad_input = True  # type: ignore[attr-defined]
    return exc


def is_users_input(exc: BaseException) -> bool:
    return getattr(exc, "bad_input", False) is True
