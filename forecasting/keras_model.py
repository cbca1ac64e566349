"""Shared Keras machinery: every neural family only writes :meth:`KerasForecaster.network`.

Built here, once: reversible instance norm around the network, the direct multi-horizon
head (point or monotone quantiles), the optimiser / schedule / clipping / L2, the device
strategy and precision, early stopping with best weights restored, NaN guard, resumable
checkpoints, batched prediction and ``.keras`` save/load with ``safe_mode=True``.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from deepcast.features.errors import RunFailed
from deepcast.features.windows import make_dataset
from deepcast.forecasting.base import (
    KERAS_FILE,
    EpochHook,
    FamilyOptions,
    Forecaster,
    TrainingData,
    TrainSettings,
)
from deepcast.forecasting.checkpoint import TrainingCheckpoint
from deepcast.forecasting.runtime import resolve_runtime

PREDICT_CHUNK = 8192
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


class KerasOptions(FamilyOptions):
    """Options every neural family has."""

    instance_norm: bool = Field(
        True, description="Reversible instance normalisation (RevIN): each input window is "
        "normalised by its own mean/std and the forecast mapped back (helps trending series).",
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout rate inside the network.")
    quantiles: list[float] | None = Field(
        None, description="Quantile levels, e.g. [0.1, 0.5, 0.9]: trains a pinball-loss head; "
        "the forecast gains yhat_q10 ... columns and yhat is the median (0.5 is added).",
    )

    @field_validator("quantiles")
    @classmethod
    def _check_quantiles(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return None
        bad = [q for q in v if not 0.0 < q < 1.0]
        if bad:
            raise ValueError(f"quantiles must lie strictly between 0 and 1, got {bad}")
        levels = sorted({round(float(q), 4) for q in v} | {0.5})
        if len({quantile_column(q) for q in levels}) < len(levels):
            raise ValueError(f"quantiles {v} are too close to name distinct columns")
        return levels


class HiddenNormOptions(KerasOptions):
    """Options of families with stacked hidden layers."""

    norm: Literal["none", "layer", "batch"] = Field(
        "none", description="Normalisation after every hidden layer: none, layer or batch."
    )


def quantile_column(q: float) -> str:
    """Forecast column of quantile ``q``: 0.1 -> yhat_q10, 0.025 -> yhat_q2.5."""
    return f"yhat_q{100 * q:g}"


class KerasForecaster(Forecaster):
    """A forecaster backed by a functional ``keras.Model`` (lookback, 1) -> horizon."""

    trainable = True
    covariates = frozenset({"static", "past", "future"})
    Options = KerasOptions
    model: Any = None

    @abstractmethod
    def network(self, x):
        """The family's layers: (batch, lookback, channels) -> (batch, features) tensor; the
        shared head maps the features to every horizon step (and quantile)."""

    # -- helpers families use -------------------------------------------------------
    def normalization(self, name: str):
        """The configured hidden-layer norm as a layer, or None (``norm: none``)."""
        import keras

        kind = self.options.get("norm", "none")
        if kind == "layer":
            return keras.layers.LayerNormalization(name=name)
        if kind == "batch":
            return keras.layers.BatchNormalization(name=name)
        return None

    def dropout(self, x, name: str):
        """Dropout at the configured rate (identity when 0)."""
        import keras

        rate = float(self.options.get("dropout", 0.0))
        return keras.layers.Dropout(rate, name=name)(x) if rate > 0 else x

    # -- model ------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """Names of the model's inputs (keys of ``deepcast.features.windows.window_inputs``)."""
        i = self.inputs
        names = ["y"]
        names += ["past"] if i.n_past else []
        names += ["future"] if i.n_future else []
        names += ["static"] if i.n_static else []
        names += ["static_cat"] if i.cardinalities else []
        names += ["series"] if i.n_series and i.id_embedding else []
        return names

    def build(self):
        """The uncompiled ``keras.Model``: observed mask and instance norm, the covariate
        channels, :meth:`network`, then static inputs, embeddings and the head."""
        import keras

        from deepcast.forecasting.layers import (
            CategoricalEmbeddings,
            InstanceDenorm,
            InstanceNorm,
            ObservedMask,
            SortQuantiles,
        )

        L, H, n_q, i = self.spec.lookback, self.spec.horizon, len(self.quantiles), self.inputs
        f32 = {"dtype": "float32"}
        inputs = {"y": keras.Input((L, 1), name="y")}
        values, mask = ObservedMask(name="observed", **f32)(inputs["y"])
        norm = self.options.get("instance_norm", True)
        if norm:
            values, loc, scale = InstanceNorm(name="instance_norm", **f32)([values, mask])
        channels, extras = [values, mask], []
        if i.n_past:
            inputs["past"] = keras.Input((L, i.n_past), name="past")
            channels.append(inputs["past"])
        if i.n_future:
            inputs["future"] = keras.Input((L + H, i.n_future), name="future")
            channels.append(keras.layers.Cropping1D((0, H), name="future_lookback")(
                inputs["future"]))
            ahead = keras.layers.Cropping1D((L, 0), name="future_horizon")(inputs["future"])
            extras.append(keras.layers.Flatten(name="future_flat")(ahead))
        if i.n_static:
            inputs["static"] = keras.Input((i.n_static,), name="static")
            extras.append(inputs["static"])
        if i.cardinalities:
            inputs["static_cat"] = keras.Input((len(i.cardinalities),), dtype="int32",
                                               name="static_cat")
            extras.append(CategoricalEmbeddings(i.cardinalities, i.embedding_dim,
                                                name="static_embeddings")(inputs["static_cat"]))
        if i.n_series and i.id_embedding:
            inputs["series"] = keras.Input((), dtype="int32", name="series")
            extras.append(keras.layers.Embedding(i.n_series, i.id_embedding,
                                                 name="series_embedding")(inputs["series"]))
        h = keras.layers.Concatenate(axis=-1, name="channels")(channels)
        z = self.network(h)
        if extras:
            z = keras.layers.Concatenate(axis=-1, name="features")([z, *extras])
        out = keras.layers.Dense(H * max(n_q, 1), name="head", **f32)(z)
        if n_q:
            out = keras.layers.Reshape((H, n_q), name="quantiles", **f32)(out)
            out = SortQuantiles(name="monotone", **f32)(out)
        if norm:
            out = InstanceDenorm(name="instance_denorm", **f32)([out, loc, scale])
        return keras.Model(inputs, out, name=f"{self.family}_{self.name}")

    def loss(self, settings: TrainSettings):
        import keras

        from deepcast.forecasting.layers import PinballLoss

        if self.quantiles:
            return PinballLoss(self.quantiles)
        return {"mse": "mse", "mae": "mae", "huber": keras.losses.Huber()}[settings.loss]

    def fit(self, data: TrainingData, settings: TrainSettings,
            on_epoch: EpochHook | None = None, checkpoint_dir: str | Path | None = None
            ) -> dict[str, list[float]]:
        import keras

        runtime = resolve_runtime(settings.device, settings.mixed_precision,
                                  settings.jit_compile)
        batch = settings.batch_size * runtime.n_replicas
        steps = max(1, math.ceil(len(data.train_starts) / batch))
        keras.utils.set_random_seed(settings.seed)
        with runtime.scope(), _private_layer_seeds(settings.seed):
            model = self.build()
            _apply_l2(model, settings.l2)
            model.compile(optimizer=_optimizer(settings, steps), loss=self.loss(settings),
                          jit_compile=runtime.jit_compile,
                          steps_per_execution=steps_per_execution(
                              settings.steps_per_execution, steps))
        monitor = "val_loss" if len(data.val_starts) else "loss"
        stopper = _early_stopping(monitor, settings.patience)
        plateau = (keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=max(1, settings.patience // 2),
            min_lr=settings.learning_rate / 100) if settings.schedule == "plateau" else None)
        ckpt = (TrainingCheckpoint(checkpoint_dir, _fingerprint(self, settings, data))
                if checkpoint_dir is not None else None)
        first_epoch, past, stopped = 0, {}, False
        state = ckpt.load_state() if ckpt is not None else None
        if state is not None:
            best = ckpt.restore_weights(model, state)
            first_epoch, past, stopped = state["epoch"], state["history"], state["stopped"]
            stopper.resume(state["early_stopping"], best)
            if plateau is not None:
                _set_attrs(plateau, state.get("plateau") or {})
                model.optimizer.learning_rate = state["learning_rate"]
            if on_epoch is not None:  # replay the curve so the new run shows all of it
                for e in range(first_epoch):
                    on_epoch(e, {k: v[e] for k, v in past.items()})

        callbacks = [keras.callbacks.TerminateOnNaN(), stopper]
        callbacks += [plateau] if plateau is not None else []
        callbacks += [_EpochHook(on_epoch)] if on_epoch is not None else []
        if ckpt is not None:
            callbacks.append(_Checkpointer(ckpt, stopper, plateau,
                                           {k: list(v) for k, v in past.items()}))
        new: dict[str, list[float]] = {}
        if not stopped and first_epoch < settings.max_epochs:
            geometry = (self.spec.lookback, self.spec.horizon, batch)
            train = self._dataset(data, data.train_starts, geometry, seed=settings.seed,
                                  epochs=range(first_epoch, settings.max_epochs))
            val = (self._dataset(data, data.val_starts, geometry)
                   if len(data.val_starts) else None)
            new = model.fit(train, validation_data=val, epochs=settings.max_epochs,
                            initial_epoch=first_epoch, steps_per_epoch=steps, verbose=0,
                            shuffle=False, callbacks=callbacks).history
        elif stopper.best_weights is not None:
            model.set_weights(stopper.best_weights)
        history = {k: [float(x) for x in past.get(k, [])] + [float(x) for x in new.get(k, [])]
                   for k in {**past, **new}}
        losses = history.get("loss", [])
        if any(not math.isfinite(v) for v in losses):
            raise RunFailed(
                f"model {self.name!r} ({self.family}): training loss became NaN/inf at epoch "
                f"{len(losses)}",
                hint="lower training.learning_rate, set training.clipnorm, check the data "
                "scale, or use loss: huber",
            )
        from deepcast.forecasting.layers import fill_unseen_embeddings

        fill_unseen_embeddings(model)
        self.model = self._to_float32(model) if runtime.mixed else model
        # predictions run as a plain graph, as in a model loaded from the registry: it
        # traces in ~0.1 s per batch shape where XLA compiles in ~0.5 s (2 CPU cores)
        self.model.jit_compile = False
        if ckpt is not None:
            ckpt.clear()
        return history

    def _dataset(self, data: TrainingData, starts: np.ndarray, geometry: tuple[int, int, int],
                 **shuffle):
        """The ``tf.data`` stream of this model's inputs only."""
        names = self.input_names
        ds = make_dataset(data.values, starts, *geometry, covariates=data.covariates,
                          offsets=data.offsets, **shuffle)
        if data.covariates is None:
            return ds
        return ds.map(lambda x, y: ({k: x[k] for k in names}, y))

    def _to_float32(self, model):
        """A float32 copy of a mixed-precision model, so it loads and predicts on any CPU."""
        import keras

        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")
        try:
            clone = self.build()
        finally:
            keras.config.set_dtype_policy(previous)
        clone.set_weights(model.get_weights())
        return clone

    def predict(self, x: np.ndarray, covariates: dict[str, np.ndarray] | None = None
                ) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"model {self.name!r} is not fitted")
        inputs = {"y": np.asarray(x, dtype=np.float32)[..., None]}
        for name in self.input_names[1:]:
            if covariates is None or name not in covariates:
                raise ValueError(f"model {self.name!r} needs the {name!r} covariate input")
            inputs[name] = np.asarray(covariates[name])
        parts = [np.asarray(self.model.predict_on_batch(
                     {k: v[i : i + PREDICT_CHUNK] for k, v in inputs.items()}))
                 for i in range(0, len(x), PREDICT_CHUNK)]
        shape = (0, self.spec.horizon) + ((len(self.quantiles),) if self.quantiles else ())
        yhat = np.concatenate(parts) if parts else np.zeros(shape, np.float32)
        return self.check_output(x, yhat.astype(np.float64))

    def _save_weights(self, path: Path) -> None:
        self.model.save(path / KERAS_FILE)

    def _load_weights(self, path: Path) -> None:
        import keras

        import deepcast.forecasting.layers  # noqa: F401  (registers the custom layers before loading)

        self.model = keras.saving.load_model(path / KERAS_FILE, safe_mode=True, compile=False)


def steps_per_execution(setting: str | int, steps_per_epoch: int, cap: int = 32) -> int:
    """Steps per compiled call: ``auto`` is the largest divisor of ``steps_per_epoch`` up
    to ``cap`` (or to a given number). A divisor, because Keras runs whole executions: a
    step count that is not a multiple would read batches of the next epoch."""
    limit = cap if setting == "auto" else max(1, int(setting))
    return max(d for d in range(1, min(limit, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


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
    Same sequence as ``keras.utils.set_random_seed(seed)`` gives an undisturbed process."""
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


def _fingerprint(f: Forecaster, settings: TrainSettings, data: TrainingData) -> str:
    """What a checkpoint must match to be resumed: family, options, settings and data."""
    import hashlib
    import json
    from dataclasses import asdict

    h = hashlib.sha256(json.dumps([f.family, f.name, asdict(f.spec), f.options,
                                   asdict(settings)], sort_keys=True, default=str).encode())
    for arr in (data.values, data.train_starts, data.val_starts):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _set_attrs(obj: Any, values: dict[str, Any]) -> None:
    for k, v in values.items():
        setattr(obj, k, v)


def _early_stopping(monitor: str, patience: int):
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
                _set_attrs(self, state)

        def state(self) -> dict[str, Any]:
            best = self.best if self.best is not None and math.isfinite(self.best) else None
            return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}

    return ResumableEarlyStopping(monitor=monitor, patience=patience,
                                  restore_best_weights=True)


class _Checkpointer:
    """Writes a :class:`TrainingCheckpoint` after every epoch (runs after the other
    callbacks, so the early-stopping and learning-rate state are those of this epoch)."""

    def __new__(cls, ckpt: TrainingCheckpoint, stopper, plateau, past: dict[str, list]):
        import keras

        class Checkpointer(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                for k, v in (logs or {}).items():
                    past.setdefault(k, []).append(float(v))
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

        return Checkpointer()


class _EpochHook:
    """Adapter from Keras' callback protocol to a plain ``(epoch, logs)`` function."""

    def __new__(cls, fn: EpochHook):
        import keras

        class Hook(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                fn(epoch, {k: float(v) for k, v in (logs or {}).items()})

        return Hook()


__all__ = ["KerasForecaster", "KerasOptions", "quantile_column"]
