"""Baselines: naive, seasonal naive, window mean and drift. They are models like the others
(saved, logged, registrable) so a baseline can be champion when nothing beats it. They use
the target only, and handle left-padded (NaN) windows of short series."""

from __future__ import annotations

import numpy as np

from deepcast.forecasting.base import Forecaster
from deepcast.forecasting.registry import register_family


@register_family("naive")
class Naive(Forecaster):
    """Repeat the last observed value."""

    def predict(self, x: np.ndarray, covariates=None) -> np.ndarray:
        yhat = np.repeat(x[:, -1:], self.spec.horizon, axis=1)
        return self.check_output(x, yhat)


@register_family("seasonal_naive")
class SeasonalNaive(Forecaster):
    """Repeat the last observed season: yhat[t+h] = y[t + h - m * ceil(h / m)]."""

    def predict(self, x: np.ndarray, covariates=None) -> np.ndarray:
        m, lookback = self.spec.season_length, x.shape[1]
        if lookback < m:
            raise ValueError(
                f"seasonal_naive needs lookback >= season_length ({m}), got {lookback}"
            )
        idx = lookback - m + (np.arange(self.spec.horizon) % m)
        yhat = x[:, idx]
        # a series shorter than one season: naive where the season is not observed
        return self.check_output(x, np.where(np.isnan(yhat), x[:, -1:], yhat))


@register_family("mean")
class WindowMean(Forecaster):
    """The mean of the lookback window, flat over the horizon."""

    def predict(self, x: np.ndarray, covariates=None) -> np.ndarray:
        yhat = np.repeat(np.nanmean(x, axis=1, keepdims=True), self.spec.horizon, axis=1)
        return self.check_output(x, yhat)


@register_family("drift")
class Drift(Forecaster):
    """Random walk with drift: the line through the first and last points of the window,
    extended: yhat[t+h] = y[t] + h * (y[t] - y[t-L+1]) / (L - 1)."""

    def predict(self, x: np.ndarray, covariates=None) -> np.ndarray:
        lookback = x.shape[1]
        first = np.argmax(~np.isnan(x), axis=1)  # first observed point (after padding)
        span = np.maximum(lookback - 1 - first, 1)
        slope = (x[:, -1] - x[np.arange(len(x)), first]) / span
        steps = np.arange(1, self.spec.horizon + 1)
        return self.check_output(x, x[:, -1:] + slope[:, None] * steps[None, :])
