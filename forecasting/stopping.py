"""Early stopping for the training loop: Keras's, with the best weights restored, a state
that survives a resume from a checkpoint, and, for a warm start, the start weights as the
score to beat (so a warm fit never ends worse than where it began)."""

from __future__ import annotations

import math
from typing import Any

KEPT_START = -1  # the best epoch when a warm fit's start weights stayed best


def set_attrs(obj: Any, values: dict[str, Any]) -> None:
    """Restore saved attributes (a callback's state) onto ``obj``."""
    for k, v in values.items():
        setattr(obj, k, v)


def early_stopping(monitor: str, patience: int) -> Any:
    """Keras EarlyStopping (best weights restored) whose state survives a resume."""
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        _resumed: tuple[dict[str, Any], list | None] | None = None

        def resume(self, state: dict[str, Any], best_weights: list | None) -> None:
            self._resumed = (state, best_weights)
            self.best_weights = best_weights

        def on_train_begin(self, logs=None) -> None:
            super().on_train_begin(logs)
            if self._resumed is not None:
                state, self.best_weights = self._resumed
                set_attrs(self, state)

        def state(self) -> dict[str, Any]:
            best = self.best if self.best is not None and math.isfinite(self.best) else None
            return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}

    return ResumableEarlyStopping(monitor=monitor, patience=patience,
                                  restore_best_weights=True)


def applied_warm_start(net: Any) -> Any:
    """The net's warm start when its weights were applied (a WarmStart), else None."""
    warm = getattr(net, "warm_start", None)
    return warm if warm is not None and warm.applied else None


def start_weights_as_baseline(model: Any, stopper: Any, val: Any) -> None:
    """A warm fit must not end worse than the weights it started from: their validation
    loss is the score every epoch has to beat, and they are what early stopping restores
    when none does (Keras alone restores the best epoch it ran, never the start)."""
    loss = float(model.evaluate(val, verbose=0, return_dict=True)["loss"])
    if math.isfinite(loss):
        stopper.resume({"wait": 0, "best": loss, "best_epoch": KEPT_START},
                       model.get_weights())


def note_kept_start(warm: Any, stopper: Any) -> None:
    """Say on the warm start's note when no epoch beat the start weights."""
    if getattr(stopper, "best_epoch", None) == KEPT_START:  # unset: no epoch ran
        warm.note += (f"; no epoch beat the start weights on validation (val_loss "
                      f"{stopper.best:.4g}): kept them")
