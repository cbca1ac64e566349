"""Baselines: naive and seasonal naive. They are models like the others (saved, logged,
registrable) so a baseline can be champion when nothing beats it."""

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
