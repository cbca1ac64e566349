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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from deepcast.features.errors import RunFailed
from deepcast.forecasting.base import (
    COUNT_DISTRIBUTIONS,
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
    distribution: Literal["normal", "studentt", "poisson", "negbin"] | None = Field(
        None, description="A distribution head: the network emits the distribution's "
        "parameters per step and is trained on their negative log-likelihood; the forecast "
        "gains the quantiles `distribution_quantiles` of it and yhat is its median. "
        "normal; studentt (heavy tails); poisson or negbin (counts: needs "
        "features.scaler: none). Not with `quantiles`.")
    distribution_quantiles: list[float] = Field(
        [0.1, 0.9], validate_default=True,
        description="Quantile levels a distribution head writes (0.5 is added).")

    @model_validator(mode="after")
    def _one_probabilistic_head(self) -> KerasOptions:
        if self.quantiles and self.distribution:
            raise ValueError("quantiles (a pinball-loss head) and distribution (a likelihood "
                             "head) exclude each other: keep one; a distribution head's "
                             "levels are set with distribution_quantiles")
        return self

    @field_validator("quantiles", "distribution_quantiles")
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


@dataclass
class NetworkInputs:
    """The tensors a family's network is built from (inside the instance norm)."""

    values: Any  # (batch, lookback, 1): the target history, NaN padding set to 0
    mask: Any  # (batch, lookback, 1): 1 where the history was observed
    past: Any  # (batch, lookback, n_past) past covariates, or None
    future_history: Any  # (batch, lookback, n_future) future covariates' known past, or None
    future: Any  # (batch, horizon, n_future) future covariates over the horizon, or None
    static: list  # (batch, k) each: numeric statics, categorical and series-ID embeddings

    @property
    def channels(self) -> list:
        """The covariate channels of the lookback (past, then future covariates' past)."""
        return [c for c in (self.past, self.future_history) if c is not None]

    @property
    def history(self) -> list:
        """Every per-step channel of the lookback, target and mask first."""
        return [self.values, self.mask, *self.channels]

    def flat_extras(self) -> list:
        """The inputs outside the lookback, flattened: future horizon, then statics."""
        import keras

        future = ([keras.layers.Flatten(name="future_flat")(self.future)]
                  if self.future is not None else [])
        return future + self.static


def quantile_column(q: float) -> str:
    """Forecast column of quantile ``q``: 0.1 -> yhat_q10, 0.025 -> yhat_q2.5."""
    return f"yhat_q{100 * q:g}"


class KerasForecaster(Forecaster):
    """A forecaster backed by a functional ``keras.Model`` (lookback, 1) -> horizon."""

    trainable = True
    covariates = frozenset({"static", "past", "future"})
    Options = KerasOptions
    model: Any = None
    #: weights to start the next fit from (``forecasting.warm.WarmStart``), or None: cold
    warm_start: Any = None

    def network(self, x):
        """The family's layers: (batch, lookback, channels) -> (batch, features) tensor; the
        shared head maps the features to every horizon step (and quantile). A family that
        maps its inputs to the forecast itself overrides :meth:`forward` instead."""
        raise NotImplementedError(f"{type(self).__name__} defines neither network nor forward")

    def forward(self, parts: NetworkInputs):
        """Inputs to the (normalised) forecast: the history channels through
        :meth:`network`, the horizon's future covariates and the statics joined after it,
        then the shared head. Families whose paper wires covariates differently (N-HiTS,
        TiDE, TSMixer) override this and end with :meth:`finish`."""
        import keras

        h = keras.layers.Concatenate(axis=-1, name="channels")(parts.history)
        z = self.network(h)
        extras = parts.flat_extras()
        if extras:
            z = keras.layers.Concatenate(axis=-1, name="features")([z, *extras])
        return self._head(z)

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
        from deepcast.forecasting.layers import HashDropout

        rate = float(self.options.get("dropout", 0.0))
        return HashDropout(rate, name=name)(x) if rate > 0 else x

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
        counts = self.distribution in COUNT_DISTRIBUTIONS
        if counts:  # counts are scaled, never shifted (a rate stays positive)
            from deepcast.forecasting.distributions import MeanScale

            norm = True
            values, loc, scale = MeanScale(name="mean_scale", **F32)([values, mask])
        elif norm:
            values, loc, scale = InstanceNorm(name="instance_norm", **F32)([values, mask])
        out = self.forward(self._covariate_inputs(inputs, values, mask))
        if norm:
            kind = ("count" if counts else "location_scale" if self.distribution
                    else "values")
            out = InstanceDenorm(kind, name="instance_denorm", **F32)([out, loc, scale])
        return keras.Model(inputs, out, name=f"{self.family}_{self.name}")

    def _covariate_inputs(self, inputs: dict[str, Any], values, mask) -> NetworkInputs:
        """Add the covariate inputs of :attr:`inputs` (the InputSpec) to ``inputs``; return
        every tensor a family's :meth:`forward` may use."""
        import keras

        from deepcast.forecasting.layers import CategoricalEmbeddings

        L, H, i = self.spec.lookback, self.spec.horizon, self.inputs
        static, past, future_history, future = [], None, None, None
        if i.n_past:
            past = inputs["past"] = keras.Input((L, i.n_past), name="past")
        if i.n_future:
            inputs["future"] = keras.Input((L + H, i.n_future), name="future")
            future_history = keras.layers.Cropping1D((0, H), name="future_lookback")(
                inputs["future"])
            future = keras.layers.Cropping1D((L, 0), name="future_horizon")(inputs["future"])
        if i.n_static:
            inputs["static"] = keras.Input((i.n_static,), name="static")
            static.append(inputs["static"])
        if i.cardinalities:
            inputs["static_cat"] = keras.Input((len(i.cardinalities),), dtype="int32",
                                               name="static_cat")
            static.append(CategoricalEmbeddings(i.cardinalities, i.embedding_dim,
                                                name="static_embeddings")(inputs["static_cat"]))
        if i.n_series and i.id_embedding:
            inputs["series"] = keras.Input((), dtype="int32", name="series")
            static.append(keras.layers.Embedding(i.n_series, i.id_embedding,
                                                 name="series_embedding")(inputs["series"]))
        return NetworkInputs(values, mask, past, future_history, future, static)

    @property
    def distribution(self) -> str | None:
        """The distribution head's family, or None."""
        return self.options.get("distribution")

    @property
    def quantiles(self) -> tuple[float, ...]:
        """Quantile levels forecast: the quantile head's, or the distribution head's."""
        if self.distribution:
            return tuple(self.options["distribution_quantiles"])
        return super().quantiles

    @property
    def n_outputs(self) -> int:
        """Values per horizon step: one per quantile, a distribution's parameters, else one."""
        if self.distribution:
            from deepcast.forecasting.distributions import N_PARAMS

            return N_PARAMS[self.distribution]
        return max(len(self.quantiles), 1)

    def _head(self, z):
        """The direct multi-horizon head: (batch, horizon), or monotone quantiles
        (batch, horizon, n_quantiles)."""
        import keras

        out = keras.layers.Dense(self.spec.horizon * self.n_outputs, name="head", **F32)(z)
        return self.finish(keras.layers.Reshape((self.spec.horizon, self.n_outputs),
                                                name="quantiles", **F32)(out)
                           if self.quantiles else out)

    def finish(self, y):
        """A forecast of (batch, horizon, n_outputs) or (batch, horizon) as the model's
        output: (batch, horizon) for a point model, sorted quantiles otherwise."""
        import keras

        from deepcast.forecasting.layers import SortQuantiles

        if self.distribution:
            from deepcast.forecasting.distributions import DistributionParams

            return DistributionParams(self.distribution, name="distribution", **F32)(y)
        if not self.quantiles:
            return (keras.layers.Reshape((self.spec.horizon,), name="point", **F32)(y)
                    if len(y.shape) == 3 else y)
        return SortQuantiles(name="monotone", **F32)(y)

    def fit(self, data: TrainingData, settings: TrainSettings,
            on_epoch: EpochHook | None = None, checkpoint_dir: str | Path | None = None
            ) -> dict[str, list[float]]:
        """Fit with the shared training loop (``training.train_network``)."""
        self.model, history = train_network(self, data, settings, on_epoch, checkpoint_dir)
        return history

    def predict(self, x: np.ndarray, covariates: dict[str, np.ndarray] | None = None
                ) -> np.ndarray:
        inputs = self.feeds(x, covariates)
        parts = [np.asarray(self.model.predict_on_batch(
                     {k: v[i : i + PREDICT_CHUNK] for k, v in inputs.items()}))
                 for i in range(0, len(x), PREDICT_CHUNK)]
        shape = (0, self.spec.horizon) + ((self.n_outputs,) if self.quantiles else ())
        yhat = np.concatenate(parts) if parts else np.zeros(shape, np.float32)
        if self.distribution:  # parameters -> the forecast's quantiles
            from deepcast.forecasting.distributions import quantiles_of

            yhat = quantiles_of(self.distribution, yhat, self.quantiles)
        return self.check_output(x, yhat.astype(np.float64))

    def feeds(self, x: np.ndarray, covariates: dict[str, np.ndarray] | None = None
              ) -> dict[str, np.ndarray]:
        """The fitted network's inputs for windows ``x``: the target history and the
        covariate inputs it was built with (a training-only ``target`` input is left out)."""
        if self.model is None:
            raise RuntimeError(f"model {self.name!r} is not fitted")
        inputs = {"y": np.asarray(x, dtype=np.float32)[..., None]}
        for name in self.input_names[1:]:
            if name == "target":
                continue
            if covariates is None or name not in covariates:
                raise ValueError(f"model {self.name!r} needs the {name!r} covariate input")
            inputs[name] = np.asarray(covariates[name])
        return inputs

    def _save_weights(self, path: Path) -> None:
        self.model.save(path / KERAS_FILE)

    def _load_weights(self, path: Path) -> None:
        import keras

        import deepcast.forecasting.distributions  # noqa: F401  (registers its layers too)
        import deepcast.forecasting.layers  # noqa: F401  (registers the custom layers before loading)
        import deepcast.forecasting.tft_layers  # noqa: F401  (and the TFT's blocks)

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


__all__ = ["KerasForecaster", "KerasOptions", "NetworkInputs", "quantile_column"]
