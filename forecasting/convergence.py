"""Did a fit converge? A model that ran every one of its ``max_epochs`` while its
monitored loss (validation loss, else training loss) was still falling was stopped by the
budget, not by early stopping: more epochs would likely have improved it. The train stage
reports this on the model's result, its MLflow run and the CLI summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Convergence:
    """The verdict on one fit: ``converged`` is None for a model that does not train."""

    converged: bool | None
    reason: str = ""


def convergence(history: dict[str, list[float]], max_epochs: int) -> Convergence:
    """Not converged when the fit ran all ``max_epochs`` and its monitored loss was still
    falling at the end: the best epoch is one of the last two, or the last epoch improved
    on the one before. A fit that early stopping ended, or with no loss curve, converged
    (or is not judged)."""
    if not history.get("loss"):
        return Convergence(None)
    monitor = "val_loss" if history.get("val_loss") else "loss"
    curve = [v for v in history[monitor] if math.isfinite(v)]
    epochs = len(history["loss"])
    if epochs < max_epochs:
        return Convergence(True, f"early stopping ended the fit after {epochs} of "
                           f"{max_epochs} epochs")
    if not curve:
        return Convergence(None)
    best = min(range(len(curve)), key=curve.__getitem__)
    falling = best >= len(curve) - 2 or (len(curve) > 1 and curve[-1] < curve[-2])
    if not falling:
        return Convergence(True, f"{monitor} stopped improving at epoch {best + 1} of "
                           f"{epochs}")
    return Convergence(False, f"stopped at training.max_epochs={max_epochs} while {monitor} "
                       f"was still falling (best at epoch {best + 1} of {epochs}); raise "
                       "training.max_epochs")


__all__ = ["Convergence", "convergence"]
