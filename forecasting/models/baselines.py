"""Baselines: naive, seasonal naive, window mean and drift. They are models like the others
(saved, logged, registrable) so a baseline can be champion when nothing beats it."""

from __future__ import annotations

import numpy as np

from forecasting.base import Forecaster, register_family


@register_family("naive")
class Naive(Forecaster):
    """Repeat the last observed value."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        yhat = np.repeat(x[:, -1:], self.spec.horizon, axis=1)
        return self.check_output(x, yhat)


@register_family("seasonal_naive")
class SeasonalNaive(Forecaster):
    """Repeat the last observed season: yhat[t+h] = y[t + h - m * ceil(h / m)]."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        m, lookback = self.spec.season_length, x.shape[1]
        if lookback < m:
            raise ValueError(
                f"seasonal_naive needs lookback >= season_length ({m}), got {lookback}"
            )
        idx = lookback - m + (np.arange(self.spec.horizon) % m)
        return self.check_output(x, x[:, idx])


@register_family("mean")
class WindowMean(Forecaster):
    """The mean of the lookback window, flat over the horizon."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        yhat = np.repeat(x.mean(axis=1, keepdims=True), self.spec.horizon, axis=1)
        return self.check_output(x, yhat)


@register_family("drift")
class Drift(Forecaster):
    """Random walk with drift: the line through the first and last points of the window,
    extended: yhat[t+h] = y[t] + h * (y[t] - y[t-L+1]) / (L - 1)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        lookback = x.shape[1]
        slope = (x[:, -1] - x[:, 0]) / max(lookback - 1, 1)
        steps = np.arange(1, self.spec.horizon + 1)
        return self.check_output(x, x[:, -1:] + slope[:, None] * steps[None, :])
