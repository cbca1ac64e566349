"""``auto.time_limit``: which models a ``train`` still starts once its time is spent."""

from __future__ import annotations

import time
from typing import Any

from deepcast.forecasting.models import families


def costly(family: str) -> bool:
    """A model the time limit may skip: it trains, or fits every series (statistical)."""
    cls = families()[family]
    return cls.trainable or cls.local


class Budget:
    """``auto.time_limit`` of one train: a model that trains, or fits every series
    (statistical), starts only while time is left (baselines always run); an ensemble keeps
    the members that were trained, and is itself skipped with fewer than two, or when it
    trains members of its own (bagging) and the time is spent. What was skipped is kept,
    in order."""

    def __init__(self, limit: float | None) -> None:
        self.limit, self.start, self.skipped = limit, time.perf_counter(), []

    def allows(self, label: str, costly: bool = True) -> bool:
        spent = self.limit is not None and time.perf_counter() - self.start > self.limit
        if spent and costly:
            self.skipped.append(label)
        return not (spent and costly)

    def ensemble(self, spec: Any, trained: set[str]) -> Any:
        """``spec`` with its untrained members left out, or None to skip it."""
        if spec.method == "bagging":
            return spec if self.allows(spec.name) else None
        members = [m for m in spec.members if m in trained]
        if members == spec.members:
            return spec
        if len(members) < 2:
            self.skipped.append(spec.name)
            return None
        return spec.model_copy(update={"members": members})
