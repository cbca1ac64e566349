"""The training loop of the Keras families: a built network in, a fitted model out.

Kept apart from network assembly (``keras_model.py``), as Darts keeps its trainer apart
from its modules: the optimiser, schedule, clipping and L2; the device strategy and
precision; ``steps_per_execution``; early stopping with best weights restored; the NaN
guard; per-epoch hooks and resumable checkpoints (``checkpoint.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deepcast.features.errors import RunFailed
from deepcast.features.windows import Epochs
from deepcast.forecasting import graphs
from deepcast.forecasting.base import EpochHook, InputSpec, TrainingData, TrainSettings, WindowSpec
from deepcast.forecasting.checkpoint import TrainingCheckpoint
from deepcast.forecasting.runtime import Runtime, resolve_runtime
from deepcast.forecasting.stopping import (
    applied_warm_start,
    early_stopping,
    note_kept_start,
    set_attrs,
    start_weights_as_baseline,
)
from deepcast.forecasting.streams import Feed

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


class Network(Protocol):
    """What the loop needs of a model to fit (a ``KerasForecaster`` is one)."""

    name: str
    family: str
    spec: WindowSpec
    options: dict[str, Any]
    inputs: InputSpec

    @property
    def quantiles(self) -> tuple[float, ...]: ...

    @property
    def input_names(self) -> list[str]: ...

    def build(self) -> Any: ...


def train_network(net: Network, data: TrainingData, settings: TrainSettings,
                  on_epoch: EpochHook | None = None,
                  checkpoint_dir: str | Path | None = None) -> tuple[Any, dict[str, list[float]]]:
    """Build and fit ``net`` on the windows of ``data``: (float32 ``keras.Model`` with the
    best weights, loss history). Resumes from ``checkpoint_dir`` when it holds a
    checkpoint of the same fit; raises RunFailed when the loss becomes NaN/inf."""
    runtime = resolve_runtime(settings.device, settings.mixed_precision,
                              settings.jit_compile)
    batch = settings.batch_size * runtime.n_replicas
    model, settings, per_epoch, steps = _compiled_model(net, settings, runtime,
                                                        data.n_train, batch)
    warm = applied_warm_start(net)
    monitor = "val_loss" if data.n_val else "loss"
    stopper = early_stopping(monitor, settings.patience)
    plateau = _plateau(monitor, settings)
    ckpt = (TrainingCheckpoint(checkpoint_dir, _fingerprint(net, settings, data))
            if checkpoint_dir is not None else None)
    first_epoch, past, stopped = _resume(ckpt, model, stopper, plateau, on_epoch)
    callbacks = _callbacks(on_epoch, stopper, plateau, ckpt, past, settings.checkpoint_every)
    new: dict[str, list[float]] = {}
    if not stopped and first_epoch < settings.max_epochs:
        feed = Feed(net.input_names, data, (net.spec.lookback, net.spec.horizon, batch))
        train = feed.train(Epochs(settings.seed, range(first_epoch, settings.max_epochs),
                                  per_epoch))
        val = feed.validation() if data.n_val else None
        if warm is not None and first_epoch == 0 and val is not None:
            start_weights_as_baseline(model, stopper, val)
        new = model.fit(train, validation_data=val, epochs=settings.max_epochs,
                        initial_epoch=first_epoch, steps_per_epoch=steps, verbose=0,
                        shuffle=False, callbacks=callbacks).history
    elif stopper.best_weights is not None:
        model.set_weights(stopper.best_weights)
    history = {k: [float(x) for x in past.get(k, [])] + [float(x) for x in new.get(k, [])]
               for k in {**past, **new}}
    if warm is not None:
        note_kept_start(warm, stopper)
    _check_finite(net, history.get("loss", []))
    model = _finished(net, model, runtime)
    if ckpt is not None:
        ckpt.clear()
    return model, history


def windows_per_epoch(n_windows: int, settings: TrainSettings, batch: int) -> int:
    """Training windows per epoch: a seeded sample of ``windows_per_epoch``, else all,
    repeated up to ``min_steps_per_epoch`` batches (a small panel's training budget)."""
    if settings.windows_per_epoch is not None:
        return min(settings.windows_per_epoch, n_windows)
    return max(n_windows, int(settings.min_steps_per_epoch) * batch) if n_windows else 0


def training_loss(quantiles: tuple[float, ...], loss: str, distribution: str | None = None):
    """The negative log-likelihood for a distribution head, pinball loss for a quantile
    head, else the configured point loss."""
    import keras

    from deepcast.forecasting.layers import PinballLoss

    if distribution:
        from deepcast.forecasting.distributions import NegativeLogLikelihood

        return NegativeLogLikelihood(distribution)
    if quantiles:
        return PinballLoss(quantiles)
    return {"mse": "mse", "mae": "mae", "huber": keras.losses.Huber()}[loss]


def steps_per_execution(setting: str | int, steps_per_epoch: int, cap: int = 32) -> int:
    """Steps per compiled call: ``auto`` is the largest divisor of ``steps_per_epoch`` up
    to ``cap`` (or to a given number). A divisor, because Keras runs whole executions: a
    step count that is not a multiple would read batches of the next epoch."""
    limit = cap if setting == "auto" else max(1, int(setting))
    return max(d for d in range(1, min(limit, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def _compiled_model(net: Network, settings: TrainSettings, runtime: Runtime, n_windows: int,
                    batch: int) -> tuple[Any, TrainSettings, int, int]:
    """The seeded, compiled model (a released one of the same network reused: ``graphs``),
    started from the net's ``warm_start`` weights where they fit; the settings it trains
    with (a warm start's fewer epochs, each one pass over the windows: the small-panel
    floor is a budget for a fit from scratch), its windows and steps per epoch."""
    import keras

    keras.utils.set_random_seed(settings.seed)
    with runtime.scope(), _private_layer_seeds(settings.seed):
        model = net.build()
        warm = getattr(net, "warm_start", None)
        if warm is not None and warm.apply(model):  # False for a cold one
            settings = replace(settings, max_epochs=warm.epochs, min_steps_per_epoch=0)
            if not warm.epochs:  # used as it is: no training step to compile or trace
                return model, settings, 0, 0
        per_epoch = windows_per_epoch(n_windows, settings, batch)
        steps = max(1, math.ceil(per_epoch / batch))
        spe = steps_per_execution(settings.steps_per_execution, steps)
        xla = runtime.xla_for(steps * settings.max_epochs)
        key = graphs.graph_key(net, settings, runtime, batch, spe, steps)
        reused = None if runtime.mixed else graphs.take(key, model)
        if reused is not None:
            return reused, settings, per_epoch, steps
        _apply_l2(model, settings.l2)
        model.compile(optimizer=_optimizer(settings, steps),
                      loss=training_loss(net.quantiles, settings.loss,
                                         getattr(net, "distribution", None)),
                      jit_compile=xla, steps_per_execution=spe)
        # the optimiser's slots now: a traced step that creates them traces twice (TFT: 2 x 9 s)
        model.optimizer.build(model.trainable_variables)
        graphs.remember(model, key)
    return model, settings, per_epoch, steps


def _plateau(monitor: str, settings: TrainSettings):
    """ReduceLROnPlateau for ``schedule: plateau``, else None."""
    if settings.schedule != "plateau":
        return None
    import keras

    return keras.callbacks.ReduceLROnPlateau(
        monitor=monitor, factor=0.5, patience=max(1, settings.patience // 2),
        min_lr=settings.learning_rate / 100)


def _resume(ckpt: TrainingCheckpoint | None, model, stopper, plateau,
            on_epoch: EpochHook | None) -> tuple[int, dict[str, list], bool]:
    """(first epoch, past history, stopped) from a checkpoint, its state restored into
    ``model`` and the callbacks; (0, {}, False) without one."""
    restored = ckpt.restore(model) if ckpt is not None else None
    if restored is None:
        return 0, {}, False
    state, best = restored
    first_epoch, past = state["epoch"], state["history"]
    stopper.resume(state["early_stopping"], best)
    if plateau is not None:
        set_attrs(plateau, state.get("plateau") or {})
        model.optimizer.learning_rate = state["learning_rate"]
    if on_epoch is not None:  # replay the curve so the new run shows all of it
        for e in range(first_epoch):
            on_epoch(e, {k: v[e] for k, v in past.items()})
    return first_epoch, past, state["stopped"]


def _callbacks(on_epoch: EpochHook | None, stopper, plateau,
               ckpt: TrainingCheckpoint | None, past: dict[str, list], every: float) -> list:
    """NaN stop, early stopping, plateau, the epoch hook, then the checkpoint writer."""
    import keras

    callbacks = [keras.callbacks.TerminateOnNaN(), stopper]
    callbacks += [plateau] if plateau is not None else []
    callbacks += [_EpochHook(on_epoch)] if on_epoch is not None else []
    if ckpt is not None:
        callbacks.append(_Checkpointer(ckpt, stopper, plateau,
                                       {k: list(v) for k, v in past.items()}, every))
    return callbacks


def _check_finite(net: Network, losses: list[float]) -> None:
    """The NaN guard: a loss curve that left the finite numbers fails the fit."""
    if any(not math.isfinite(v) for v in losses):
        raise RunFailed(f"model {net.name!r} ({net.family}): training loss became NaN/inf at "
                        f"epoch {len(losses)}", hint="lower training.learning_rate, set "
                        "training.clipnorm, check the data scale, or use loss: huber")


def _finished(net: Network, model, runtime: Runtime):
    """The model as served: unseen-embedding rows filled, float32, plain-graph predict."""
    from deepcast.forecasting.layers import fill_unseen_embeddings

    fill_unseen_embeddings(model)
    model = _float32_copy(net, model) if runtime.mixed else model
    # predictions run as a plain graph, as in a model loaded from the registry: it
    # traces in ~0.1 s per batch shape where XLA compiles in ~0.5 s (2 CPU cores)
    model.jit_compile = False
    return model


def _float32_copy(net: Network, model):
    """A float32 copy of a mixed-precision model, so it loads and predicts on any CPU."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        clone = net.build()
    finally:
        keras.config.set_dtype_policy(previous)
    clone.set_weights(model.get_weights())
    return clone


def _optimizer(settings: TrainSettings, steps_per_epoch: int):
    """Optimiser with schedule, clipping and decoupled weight decay from the settings."""
    import keras

    lr: Any = settings.learning_rate
    if settings.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            settings.learning_rate, decay_steps=settings.max_epochs * steps_per_epoch,
            alpha=0.01)
    kwargs: dict[str, Any] = {"learning_rate": lr}
    if settings.clipnorm:
        kwargs["clipnorm"] = settings.clipnorm
    if settings.weight_decay:
        kwargs["weight_decay"] = settings.weight_decay
    name = settings.optimizer
    if name == "adam":
        return keras.optimizers.Adam(**kwargs)
    if name == "adamw":
        return keras.optimizers.AdamW(**{"weight_decay": 1e-4, **kwargs})
    if name == "sgd":
        return keras.optimizers.SGD(momentum=0.9, nesterov=True, **kwargs)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(**kwargs)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


@contextmanager
def _private_layer_seeds(seed: int) -> Iterator[None]:
    """Draw the seeds of unseeded initializers and dropout layers from a generator of our
    own. Keras draws them from Python's shared ``random``, which other threads of the
    process also consume (a Dask worker's event loop does, every few seconds), so a model
    built in a worker would get other weights than the same seed gives in a plain process.
    Same sequence as ``keras.utils.set_random_seed(seed)`` gives an undisturbed process.

    The one reach into ``keras.src`` of deepcast: Keras 3 (checked in 3.15) has no public
    API for the source of default seeds; ``keras.utils.set_random_seed`` only reseeds the
    shared ``random``, and passing a seed to every layer would put it in each family."""
    from keras.src.random import seed_generator

    shared = seed_generator.python_random
    seed_generator.python_random = random.Random(seed)
    try:
        yield
    finally:
        seed_generator.python_random = shared


def _apply_l2(model, l2: float) -> None:
    """L2 penalty on every kernel (dense, conv, recurrent, attention); biases and norms free."""
    if not l2:
        return
    import keras

    for v in model.trainable_variables:
        if "kernel" in v.path.rsplit("/", 1)[-1]:
            v.regularizer = keras.regularizers.L2(l2)


def _fingerprint(net: Network, settings: TrainSettings, data: TrainingData) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the network or
    the numbers it sees. Family, name, options, window spec and input spec (covariate
    channels, statics, embeddings: the weights' shapes), the training settings, and the
    bytes of every array fit on: scaled target, window starts, series offsets and each
    covariate array (so other covariate columns, calendar features, scaler or encoder
    statistics start a fresh fit instead of resuming, or failing to load, old weights)."""
    arrays = [("values", data.values), ("train_starts", data.train_starts),
              ("val_starts", data.val_starts)]
    if data.offsets is not None:
        arrays.append(("offsets", data.offsets))
    cov = data.covariates
    if cov is not None:
        arrays += [(f"covariates.{k}", getattr(cov, k))
                   for k in ("past", "future", "static", "static_cat", "series")]
    arrays = [(k, np.ascontiguousarray(a)) for k, a in arrays]
    head = [net.family, net.name, asdict(net.spec), net.options,
            # the checkpoint cadence says when checkpoints are written, not what is fit; no
            # windows_per_epoch / min_steps_per_epoch: as before they existed
            {k: v for k, v in asdict(settings).items() if k != "checkpoint_every"
             and (k, v) not in (("windows_per_epoch", None), ("min_steps_per_epoch", 0))},
            asdict(net.inputs), getattr(getattr(net, "warm_start", None), "label", None),
            [(k, a.dtype.str, a.shape) for k, a in arrays]]
    if data.stream is not None:  # the panel is elsewhere: its stream says what it holds
        head.append(data.stream.fingerprint)
    h = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
    for _, arr in arrays:
        h.update(arr.tobytes())
    return h.hexdigest()


class _Checkpointer:
    """Writes a :class:`TrainingCheckpoint` at the end of an epoch once ``every`` seconds
    of training have passed since the last one (0: every epoch). It runs after the other
    callbacks, so the early-stopping and learning-rate state are those of this epoch."""

    def __new__(cls, ckpt: TrainingCheckpoint, stopper, plateau, past: dict[str, list],
                every: float):
        import keras

        class Checkpointer(keras.callbacks.Callback):
            last = 0.0

            def on_train_begin(self, logs: dict | None = None) -> None:
                self.last = time.monotonic()

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                for k, v in (logs or {}).items():
                    past.setdefault(k, []).append(float(v))
                if time.monotonic() - self.last < every:
                    return
                state: dict[str, Any] = {
                    "epoch": epoch + 1,
                    "history": past,
                    "stopped": bool(self.model.stop_training),
                    "early_stopping": stopper.state(),
                    "learning_rate": float(np.asarray(self.model.optimizer.learning_rate)),
                }
                if plateau is not None:
                    state["plateau"] = {"wait": int(plateau.wait),
                                        "cooldown_counter": int(plateau.cooldown_counter),
                                        "best": float(plateau.best)}
                ckpt.save(self.model, state, stopper.best_weights)
                self.last = time.monotonic()

        return Checkpointer()


class _EpochHook:
    """Adapter from Keras' callback protocol to a plain ``(epoch, logs)`` function."""

    def __new__(cls, fn: EpochHook):
        import keras

        class Hook(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                fn(epoch, {k: float(v) for k, v in (logs or {}).items()})

        return Hook()


__all__ = ["Network", "steps_per_execution", "train_network", "training_loss",
           "windows_per_epoch"]
