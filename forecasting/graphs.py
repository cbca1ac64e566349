"""One traced training graph per network in a process: a fit of a network that matches a
released one trains that compiled Keras model again, restored to the state a fresh build
and compile would have, instead of tracing its train, test and predict functions anew.

Why: on small panels TensorFlow's tracing costs more than the epochs. In a night of
``benchmarks/replay.py`` (one series, 50 steps an epoch, XLA) N-HiTS's first epoch took
7 s and the next ones 0.8 s; DLinear's 2 s against 0.1 s. ``train`` fits every neural model twice
with the same network (the selection backtest's fit before its first cut-off, then the
final fit), and ``deepcast backtest`` once per refit group.

What makes a reused fit equal to a fresh one: a model enters the pool only when its owner
lets go of it (:func:`release`), and :func:`take` hands it out only for a fit whose
:func:`graph_key` (network, inputs, training settings, steps per execution, runtime) is the
same, after copying in every variable of the fresh build (weights, and the dropout layers'
seed states) and the optimiser's initial values (step count, learning rate, moments).
``tests/unit/test_graphs.py`` checks that the weights and losses come out bit-identical,
with and without XLA (whose compilation, on for fits of 2,000 planned steps or more, costs
more than tracing). Mixed-precision fits are not reused: the model they serve is a float32
copy without the training graph.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LIMIT = 2  # released models kept per process (each holds its weights and graphs)
_LOCK = threading.Lock()
_POOL: OrderedDict[str, Any] = OrderedDict()
_ATTR = "_deepcast_compiled"


@dataclass(frozen=True)
class Compiled:
    """What a compiled model remembers: its graph key and its optimiser's initial values."""

    key: str
    optimizer_start: tuple[np.ndarray, ...]


def graph_key(net: Any, settings: Any, runtime: Any, batch: int, spe: int,
              steps: int) -> str:
    """Everything the traced train step depends on: the network (family, options, window
    spec, inputs including the series count, output head), every training setting, the
    batch, steps per execution, the runtime, and for a cosine schedule the steps per epoch
    (its length)."""
    return json.dumps({
        "family": net.family, "options": net.options, "spec": asdict(net.spec),
        "inputs": asdict(net.inputs), "quantiles": list(net.quantiles),
        "distribution": getattr(net, "distribution", None),
        "settings": asdict(settings), "batch": batch, "spe": spe,
        "steps": steps if settings.schedule == "cosine" else None,
        "runtime": [runtime.device, runtime.n_replicas, runtime.dtype_policy],
    }, sort_keys=True, default=str)


def remember(model: Any, key: str) -> None:
    """Mark a freshly compiled ``model`` (optimiser built) as reusable under ``key``."""
    start = tuple(np.array(v) for v in model.optimizer.variables)
    setattr(model, _ATTR, Compiled(key, start))


def release(model: Any) -> None:
    """Let a later fit of the same network reuse ``model``: its owner will not use it again
    (a backtest fit whose forecasts are made). Models never compiled here are ignored."""
    compiled = getattr(model, _ATTR, None)
    if compiled is None:
        return
    with _LOCK:
        _POOL[compiled.key] = model
        _POOL.move_to_end(compiled.key)
        while len(_POOL) > LIMIT:
            _POOL.popitem(last=False)


def take(key: str, fresh: Any) -> Any | None:
    """The released model of ``key``, set to the state of ``fresh`` (the same network just
    built, seeded, and warm-started where asked) and its optimiser to its initial values;
    None when there is none (or, defensively, when its variables do not line up)."""
    with _LOCK:
        model = _POOL.pop(key, None)
    if model is None:
        return None
    ours, theirs = model.variables, fresh.variables
    if len(ours) != len(theirs) or any(tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype
                                       for a, b in zip(ours, theirs, strict=True)):
        return None
    for mine, new in zip(ours, theirs, strict=True):
        mine.assign(np.asarray(new))
    for var, start in zip(model.optimizer.variables, getattr(model, _ATTR).optimizer_start,
                          strict=True):
        var.assign(start)
    model.stop_training = False
    return model


def clear() -> None:
    """Forget every released model."""
    with _LOCK:
        _POOL.clear()


__all__ = ["Compiled", "clear", "graph_key", "release", "remember", "take"]
