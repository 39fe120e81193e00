"""A training session's checkpoint: what one process would hold (the whole class matrix and its
AdamW moments, gathered on rank 0, and every rank's RNG state), so it restores at any world size.
"""

from __future__ import annotations

from typing import Any

import torch

from .train_session import RANK_STREAM, Session, class_rows, sample_seed
from .world import gather_rows_to_leader, gather_to_leader

CHECKPOINT_FORMAT = "nfhm-train-checkpoint/2"


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()  # this rank's GPU
    return state


def _centres_index(session: Session) -> int:
    """The optimiser's index of the class-centre matrix (head.weight)."""
    params = [p for group in session.optimizer.param_groups for p in group["params"]]
    return next(i for i, p in enumerate(params) if p is session.head.weight)


def whole_state(session: Session) -> dict[str, Any] | None:
    """On rank 0, what a one-process session would save (the class matrix and its AdamW moments
    gathered from every rank, every rank's RNG); None on the other ranks. Every rank must call it."""
    head = dict(session.head.state_dict())
    optimizer = session.optimizer.state_dict()
    if class_rows(session) is not None:
        head["weight"] = gather_rows_to_leader(head["weight"])
        index = _centres_index(session)
        if index in optimizer["state"]:
            moments = {
                name: gather_rows_to_leader(value)
                if torch.is_tensor(value) and value.shape == session.head.weight.shape
                else value
                for name, value in optimizer["state"][index].items()
            }
            optimizer = {**optimizer, "state": {**optimizer["state"], index: moments}}
    rng = gather_to_leader(_rng_state())
    if not session.world.leader:
        return None
    generator = getattr(session.head, "generator", None)
    return {
        "format": CHECKPOINT_FORMAT,
        "step": session.step,
        "num_classes": session.num_classes,
        "embedding_size": session.embedding_size,
        "backbone": session.model.state_dict(),
        "head": head,
        "optimizer": optimizer,
        "scaler": session.precision.state_dict(),
        "rng": rng,  # one per rank
        "head_generator": generator().get_state() if callable(generator) else None,
    }


def restore(session: Session, path: str) -> None:
    """Everything `whole_state` saved, checked against this session; errors name the file. Each
    rank takes its own rows of the class matrix, so any world size can continue the run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - truncated, not a checkpoint, or a refused pickle
        raise ValueError(f"cannot read the training checkpoint {path}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(
            f"{path} is not an nfhm training checkpoint of format {CHECKPOINT_FORMAT} (found {found}); "
            "start this training over with --restart"
        )
    for name in ("num_classes", "embedding_size"):
        if state[name] != getattr(session, name):
            raise ValueError(f"{path} was written with {name}={state[name]}, but this run has {getattr(session, name)}")
    session.model.load_state_dict(state["backbone"])
    head, optimizer = dict(state["head"]), state["optimizer"]
    rows = class_rows(session)
    if rows is not None:
        whole = (session.num_classes, session.embedding_size)
        head["weight"] = head["weight"][rows]
        index = _centres_index(session)
        if index in optimizer["state"]:
            moments = {
                name: value[rows] if torch.is_tensor(value) and tuple(value.shape) == whole else value
                for name, value in optimizer["state"][index].items()
            }
            optimizer = {**optimizer, "state": {**optimizer["state"], index: moments}}
    session.head.load_state_dict(head)
    session.optimizer.load_state_dict(optimizer)
    session.precision.load_state_dict(state["scaler"])
    if len(state["rng"]) == session.world.size:
        rng = state["rng"][session.world.rank]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    else:
        # Another world size cannot continue the old drop-path streams: fresh ones per rank.
        torch.manual_seed(sample_seed(session.seed + state["step"], RANK_STREAM, session.world.rank))
    generator = getattr(session.head, "generator", None)
    if state["head_generator"] is not None and callable(generator):
        generator().set_state(state["head_generator"])
    session.step = state["step"]
    session.batches = None
