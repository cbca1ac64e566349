"""Resumable training: per-epoch checkpoints that survive a killed process.

After every epoch the model and optimizer weights (``.weights.h5``, no pickle), the random
seed state of dropout layers, the early stopping / learning-rate state, the best weights so
far and the loss history are written to a fresh ``epoch-NNNN`` folder; then ``state.json``
is atomically replaced to point at it. A process killed at any moment leaves either the
previous or the new checkpoint, never a torn one. A rerun with the same fingerprint
(config + data) continues at the next epoch with the same data order (see
``deepcast.features.windows.make_dataset``), so it ends with the same weights as an uninterrupted
run. The folder is removed when training completes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("deepcast")
STATE_FILE = "state.json"
WEIGHTS_FILE = "last.weights.h5"
BEST_FILE = "best.npz"
RNG_FILE = "rng.npz"


def _rng_variables(model) -> list:
    """Random-seed state (dropout etc.): in ``model.variables`` but not in the weights that
    ``save_weights`` writes, so saved separately for an exact resume."""
    saved = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in saved]


class CheckpointMismatch(Exception):
    """A checkpoint whose weights do not fit the network being trained."""


class TrainingCheckpoint:
    """The checkpoint folder of one model's fit."""

    def __init__(self, path: str | Path, fingerprint: str) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint

    def load_state(self) -> dict[str, Any] | None:
        """The last complete checkpoint's state, or None (none, or another fingerprint)."""
        try:
            state = json.loads((self.path / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        if state.get("fingerprint") != self.fingerprint:
            return None
        if not (self.path / state["folder"] / WEIGHTS_FILE).is_file():
            return None
        return state

    def restore(self, model) -> tuple[dict[str, Any], list[np.ndarray] | None] | None:
        """The last checkpoint's state and best weights, its weights restored into
        ``model``; None when there is none, or when it holds another network's weights
        (logged; ``model`` untouched): the fit starts from the beginning."""
        state = self.load_state()
        if state is None:
            return None
        try:
            return state, self.restore_weights(model, state)
        except CheckpointMismatch as e:
            log.warning("the checkpoint in %s holds another network's weights (%s): training "
                        "from the start", self.path, e)
            return None

    def restore_weights(self, model, state: dict[str, Any]) -> list[np.ndarray] | None:
        """Load model + optimizer weights into ``model``; return the best weights, if any.
        CheckpointMismatch, with ``model`` as it was, when the file holds another network's
        weights (one written by an earlier version of the family: the fingerprint names
        the family and its options, not its layers)."""
        folder = self.path / state["folder"]
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = [*model.variables, *(model.optimizer.variables if model.optimizer
                                           is not None else [])]
        before = [np.asarray(v) for v in variables]
        try:
            model.load_weights(folder / WEIGHTS_FILE)
        except ValueError as e:  # Keras had assigned some layers before it failed
            for v, value in zip(variables, before, strict=True):
                v.assign(value)
            raise CheckpointMismatch(str(e)) from e
        with np.load(folder / RNG_FILE, allow_pickle=False) as rng:
            for i, v in enumerate(_rng_variables(model)):
                v.assign(rng[f"v{i}"])
        best = folder / BEST_FILE
        if not best.is_file():
            return None
        with np.load(best, allow_pickle=False) as data:
            return [data[f"w{i}"] for i in range(len(data.files))]

    def save(self, model, state: dict[str, Any], best_weights: list[np.ndarray] | None
             ) -> None:
        """Write epoch ``state['epoch']``'s checkpoint, then switch ``state.json`` to it."""
        folder = f"epoch-{state['epoch']:04d}"
        target = self.path / folder
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        model.save_weights(target / WEIGHTS_FILE)
        np.savez(target / RNG_FILE, **{f"v{i}": np.asarray(v)
                                       for i, v in enumerate(_rng_variables(model))})
        if best_weights is not None:
            np.savez(target / BEST_FILE, **{f"w{i}": w for i, w in enumerate(best_weights)})
        _fsync_dir(target)
        tmp = self.path / (STATE_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({**state, "folder": folder, "fingerprint": self.fingerprint}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path / STATE_FILE)
        for old in self.path.glob("epoch-*"):
            if old.name != folder:
                shutil.rmtree(old, ignore_errors=True)

    def clear(self) -> None:
        """Training finished: the checkpoint is no longer needed."""
        shutil.rmtree(self.path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
