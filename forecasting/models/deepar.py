"""DeepAR (Salinas et al. 2020): an autoregressive LSTM over the series' previous values,
known covariates and statics, emitting the parameters of the next value's distribution.

Trained with teacher forcing on the likelihood of the horizon's values (as neuralforecast's
DeepAR: the true previous values are fed in); forecast by ancestral sampling: ``num_samples``
paths, each step's value drawn from the distribution the network gives it after the values
drawn before, then quantiles (and the median ``yhat``) of the paths. The one saved network
serves both: its ``target`` input holds the true horizon in training and the values drawn so
far when sampling (the LSTM is causal, so step j never reads target j or later).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from deepcast.forecasting.base import COUNT_DISTRIBUTIONS
from deepcast.forecasting.keras_model import F32, PREDICT_CHUNK, KerasForecaster, KerasOptions
from deepcast.forecasting.registry import register_family


class DeepAROptions(KerasOptions):
    distribution: Literal["normal", "studentt", "poisson", "negbin"] = Field(
        "studentt", description="The likelihood (deepar always has one): normal, studentt, "
        "or poisson / negbin for counts (features.scaler: none).")
    hidden_size: int = Field(128, ge=1, description="LSTM units per layer.")
    layers: int = Field(4, ge=1, le=8, description="Stacked LSTM layers.")
    num_samples: int = Field(100, ge=10, description="Sample paths drawn per series at "
                             "forecast time (quantiles and yhat are read from them).")
    sampling_seed: int = Field(0, description="Seed of the sample paths (the same history "
                               "gives the same forecast).")

    @model_validator(mode="after")
    def _sampled_and_scaled(self) -> DeepAROptions:
        if self.quantiles:
            raise ValueError("deepar forecasts quantiles of its sample paths: set "
                             "distribution_quantiles, not quantiles")
        if not self.instance_norm:
            raise ValueError("deepar scales every window itself (by its mean and std; counts "
                             "by their mean, as the paper): instance_norm: false is not "
                             "available")
        return self


@register_family("deepar")
class DeepAR(KerasForecaster):
    """Autoregressive LSTM with a likelihood head, forecast by ancestral sampling."""

    Options = DeepAROptions
    covariates = frozenset({"static", "future"})  # past-only ones are unknown ahead

    @property
    def input_names(self) -> list[str]:
        return [*super().input_names, "target"]

    def build(self):
        """The teacher-forced network: inputs -> (batch, horizon, parameters)."""
        import keras

        from deepcast.forecasting.distributions import DistributionParams, MeanScale
        from deepcast.forecasting.layers import (
            InstanceDenorm,
            InstanceNorm,
            LaggedTarget,
            ObservedMask,
        )

        L, H, o = self.spec.lookback, self.spec.horizon, self.options
        inputs = {"y": keras.Input((L, 1), name="y")}
        values, mask = ObservedMask(name="observed", **F32)(inputs["y"])
        counts = self.distribution in COUNT_DISTRIBUTIONS
        norm = (MeanScale(name="mean_scale", **F32) if counts
                else InstanceNorm(name="instance_norm", **F32))
        values, loc, scale = norm([values, mask])
        parts = self._covariate_inputs(inputs, values, mask)
        inputs["target"] = keras.Input((H,), name="target")
        steps = [LaggedTarget(name="lagged_target", **F32)(
            [inputs["target"], values, mask, loc, scale])]
        if parts.future is not None:  # the covariates of the step each input predicts
            steps.append(keras.layers.Cropping1D((1, 0), name="future_next")(
                inputs["future"]))
        if parts.static:
            static = (keras.layers.Concatenate(name="statics")(parts.static)
                      if len(parts.static) > 1 else parts.static[0])
            steps.append(keras.layers.RepeatVector(L + H - 1, name="static_steps")(static))
        h = (keras.layers.Concatenate(axis=-1, name="step_inputs")(steps)
             if len(steps) > 1 else steps[0])
        for i in range(int(o["layers"])):
            if i:
                h = self.dropout(h, f"dropout_{i}")
            h = keras.layers.LSTM(int(o["hidden_size"]), return_sequences=True,
                                  name=f"lstm_{i}")(h)
        h = keras.layers.Cropping1D((L - 1, 0), name="horizon_steps")(h)
        raw = keras.layers.Dense(self.n_outputs, name="head", **F32)(h)
        params = DistributionParams(self.distribution, name="distribution", **F32)(raw)
        out = InstanceDenorm("count" if counts else "location_scale", name="instance_denorm",
                             **F32)([params, loc, scale])
        return keras.Model(inputs, out, name=f"deepar_{self.name}")

    def predict(self, x: np.ndarray, covariates: dict[str, np.ndarray] | None = None
                ) -> np.ndarray:
        """Quantiles (n, horizon, levels) of ``num_samples`` sampled paths per series."""
        from deepcast.forecasting.distributions import sample

        feeds = self.feeds(x, covariates)
        n, H, S = len(x), self.spec.horizon, int(self.options["num_samples"])
        rng = np.random.default_rng(int(self.options["sampling_seed"]))
        levels = np.asarray(self.quantiles)
        out = np.empty((n, H, len(levels)))
        per_call = max(1, PREDICT_CHUNK // S)
        for a in range(0, n, per_call):
            batch = {k: np.repeat(v[a : a + per_call], S, axis=0) for k, v in feeds.items()}
            paths = np.zeros((len(batch["y"]), H), np.float32)
            for j in range(H):  # ancestral sampling: step j given the draws before it
                params = np.asarray(self.model.predict_on_batch({**batch, "target": paths}))
                paths[:, j] = sample(self.distribution, params[:, j], rng)
            draws = paths.reshape(-1, S, H).astype(np.float64)
            method = "inverted_cdf" if self.distribution in COUNT_DISTRIBUTIONS else "linear"
            out[a : a + per_call] = np.moveaxis(
                np.quantile(draws, levels, axis=1, method=method), 0, -1)
        return self.check_output(x, out)
