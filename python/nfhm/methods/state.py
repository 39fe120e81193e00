"""What one worker keeps between calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.model_spec import LoadedModel
    from ..core.train_session import Session


@dataclass
class WorkerState:
    # embed: the model of the last spec, reused while the spec and its weights file stay the same
    model: LoadedModel | None = None
    # train: the open training session, from train.start to train.export
    session: Session | None = None
    # whatever extension methods keep, under names of their own
    extensions: dict[str, Any] = field(default_factory=dict)
