"""Shared Keras machinery: every neural family only builds a ``keras.Model``.

Fitting (seeding, early stopping with best weights restored, NaN guard, per-epoch hook),
batched prediction and ``.keras`` save/load with ``safe_mode=True`` live here, once.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from features.errors import RunFailed
from forecasting.base import KERAS_FILE, EpochHook, Forecaster, TrainSettings

PREDICT_CHUNK = 8192


class KerasForecaster(Forecaster):
    """A forecaster backed by a functional ``keras.Model`` (lookback, 1) -> (horizon,)."""

    trainable = True
    model: Any = None

    @abstractmethod
    def network(self, x):
        """The family's layers: (batch, lookback, 1) tensor -> (batch, horizon) tensor."""

    def build(self):
        """The uncompiled ``keras.Model``: optional instance norm around :meth:`network`."""
        import keras

        from forecasting.layers import InstanceDenorm, InstanceNorm

        inputs = keras.Input((self.spec.lookback, 1), name="history")
        if self.options.get("instance_norm", True):
            h, loc, scale = InstanceNorm(name="instance_norm")(inputs)
            outputs = InstanceDenorm(name="instance_denorm")([self.network(h), loc, scale])
        else:
            outputs = self.network(inputs)
        return keras.Model(inputs, outputs, name=f"{self.family}_{self.name}")

    def fit(self, train, val, settings: TrainSettings, on_epoch: EpochHook | None = None
            ) -> dict[str, list[float]]:
        import keras

        keras.utils.set_random_seed(settings.seed)
        model = self.build()
        model.compile(
            optimizer=keras.optimizers.Adam(settings.learning_rate),
            loss={"mse": "mse", "mae": "mae", "huber": keras.losses.Huber()}[settings.loss],
            jit_compile=settings.jit_compile,
        )
        monitor = "val_loss" if val is not None else "loss"
        callbacks = [
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.EarlyStopping(monitor=monitor, patience=settings.patience,
                                          restore_best_weights=True),
        ]
        if on_epoch is not None:
            callbacks.append(_EpochHook(on_epoch))
        history = model.fit(train, validation_data=val, epochs=settings.max_epochs, verbose=0,
                            shuffle=False,
                            callbacks=callbacks)
        losses = history.history.get("loss", [])
        if any(not math.isfinite(v) for v in losses):
            raise RunFailed(
                f"model {self.name!r} ({self.family}): training loss became NaN/inf at epoch "
                f"{len(losses)}",
                hint="lower training.learning_rate, check the data scale, or use loss: huber",
            )
        self.model = model
        return {k: [float(x) for x in v] for k, v in history.history.items()}

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"model {self.name!r} is not fitted")
        x = np.asarray(x, dtype=np.float32)[..., None]
        parts = [np.asarray(self.model.predict_on_batch(x[i : i + PREDICT_CHUNK]))
                 for i in range(0, len(x), PREDICT_CHUNK)]
        yhat = np.concatenate(parts) if parts else np.zeros((0, self.spec.horizon), np.float32)
        return self.check_output(x, yhat.astype(np.float64))

    def _save_weights(self, path: Path) -> None:
        self.model.save(path / KERAS_FILE)

    def _load_weights(self, path: Path) -> None:
        import keras

        import forecasting.layers  # noqa: F401  (registers the custom layers before loading)

        self.model = keras.saving.load_model(path / KERAS_FILE, safe_mode=True, compile=False)


class _EpochHook:
    """Adapter from Keras' callback protocol to a plain ``(epoch, logs)`` function."""

    def __new__(cls, fn: EpochHook):
        import keras

        class Hook(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                fn(epoch, {k: float(v) for k, v in (logs or {}).items()})

        return Hook()
