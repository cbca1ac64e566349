"""Network assembly shared by the neural families: a family only writes
:meth:`KerasForecaster.network`.

Built here, once: the model's inputs (target history with its observed mask, covariate
channels, static and embedding inputs), reversible instance norm around the network, the
direct multi-horizon head (point or monotone quantiles), batched prediction and ``.keras``
save/load with ``safe_mode=True``. Fitting (optimiser, early stopping, resume, NaN guard)
is ``training.py``'s job.
"""

from __future__ import annotations

import zipfile
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from deepcast.features.errors import RunFailed
from deepcast.forecasting.base import (
    KERAS_FILE,
    EpochHook,
    FamilyOptions,
    Forecaster,
    TrainingData,
    TrainSettings,
)
from deepcast.forecasting.training import train_network

PREDICT_CHUNK = 8192
F32 = {"dtype": "float32"}  # layers kept in float32 under mixed precision


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

        from deepcast.forecasting.layers import InstanceDenorm, InstanceNorm, ObservedMask

        inputs = {"y": keras.Input((self.spec.lookback, 1), name="y")}
        values, mask = ObservedMask(name="observed", **F32)(inputs["y"])
        norm = self.options.get("instance_norm", True)
        if norm:
            values, loc, scale = InstanceNorm(name="instance_norm", **F32)([values, mask])
        channels, extras = self._covariate_inputs(inputs)
        h = keras.layers.Concatenate(axis=-1, name="channels")([values, mask, *channels])
        z = self.network(h)
        if extras:
            z = keras.layers.Concatenate(axis=-1, name="features")([z, *extras])
        out = self._head(z)
        if norm:
            out = InstanceDenorm(name="instance_denorm", **F32)([out, loc, scale])
        return keras.Model(inputs, out, name=f"{self.family}_{self.name}")

    def _covariate_inputs(self, inputs: dict[str, Any]) -> tuple[list, list]:
        """Add the covariate inputs of :attr:`inputs` (the InputSpec) to ``inputs``; return
        (extra channels of the history, features joined after the network)."""
        import keras

        from deepcast.forecasting.layers import CategoricalEmbeddings

        L, H, i = self.spec.lookback, self.spec.horizon, self.inputs
        channels, extras = [], []
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
        return channels, extras

    def _head(self, z):
        """The direct multi-horizon head: (batch, horizon), or monotone quantiles
        (batch, horizon, n_quantiles)."""
        import keras

        from deepcast.forecasting.layers import SortQuantiles

        H, n_q = self.spec.horizon, len(self.quantiles)
        out = keras.layers.Dense(H * max(n_q, 1), name="head", **F32)(z)
        if n_q:
            out = keras.layers.Reshape((H, n_q), name="quantiles", **F32)(out)
            out = SortQuantiles(name="monotone", **F32)(out)
        return out

    def fit(self, data: TrainingData, settings: TrainSettings,
            on_epoch: EpochHook | None = None, checkpoint_dir: str | Path | None = None
            ) -> dict[str, list[float]]:
        """Fit with the shared training loop (``training.train_network``)."""
        self.model, history = train_network(self, data, settings, on_epoch, checkpoint_dir)
        return history

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

        file = path / KERAS_FILE
        if not file.is_file():
            raise RunFailed(f"model file {file} is missing from the model bundle",
                            hint="the bundle is incomplete: retrain, or roll back to another "
                            "version (`deepcast promote --rollback`)")
        if not zipfile.is_zipfile(file):  # Keras says "File not found" for a broken file
            raise RunFailed(f"model file {file} is not a valid .keras archive (corrupt or "
                            "truncated)", hint="retrain, or roll back to another version "
                            "(`deepcast promote --rollback`)")
        self.model = keras.saving.load_model(file, safe_mode=True, compile=False)


__all__ = ["KerasForecaster", "KerasOptions", "quantile_column"]
