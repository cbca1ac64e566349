"""Cross-validation results of one model: its out-of-sample forecasts on rolling
backtest windows, scored window by window, and an ensemble's forecasts built from its
members' (learned weights cross-fitted over the windows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepcast.forecasting.ensemble import LEARNED, ensemble_weights
from deepcast.forecasting.metrics import score


@dataclass(frozen=True)
class SpanBacktest:
    """One model's out-of-sample forecasts on the training span's backtest windows, one row
    per series x window (series in frame order, windows oldest first): truth ``y`` (n, h),
    forecast ``f`` (n, h), the seasonal naive MAE before each cut-off ``scale`` (n,), NaN
    where 0; ``n_series`` series took part (those long enough for the first cut-off)."""

    y: np.ndarray
    f: np.ndarray
    scale: np.ndarray
    n_windows: int
    n_series: int
    ids: np.ndarray | None = None  # the series, in row-block order
    #: the fitted model of the backtest's fit and what it was fit on, when kept (for the
    #: next night's warm start: ``pipelines.warm_start.save_selection_fit``)
    fit: Any = field(default=None, repr=False, compare=False)
    fit_data: Any = field(default=None, repr=False, compare=False)
    #: (n,) each row's conformal scale (forecasting.conformal.band_scale); None: ``scale``
    band_scale: np.ndarray | None = field(default=None, repr=False, compare=False)

    def residual_matrix(self, ids: np.ndarray) -> np.ndarray:
        """Residuals per series (rows in ``ids`` order, NaN for a series not backtested),
        windows and steps side by side: (len(ids), n_windows * h)."""
        out = np.full((len(ids), self.n_windows * self.y.shape[1]), np.nan)
        if self.ids is None:
            return out
        where = {uid: i for i, uid in enumerate(ids)}
        resid = (self.y - self.f).reshape(self.n_series, -1)
        for k, uid in enumerate(self.ids):
            if uid in where:
                out[where[uid]] = resid[k]
        return out

    @property
    def window(self) -> np.ndarray:
        """The window of each row."""
        return np.tile(np.arange(self.n_windows), self.n_series)

    def scores(self, metric: str) -> list[float]:
        """``metric`` of each window over its series, oldest window first."""
        w = self.window
        return [score(self.y[w == k], self.f[w == k], self.scale[w == k])[metric]
                for k in range(self.n_windows)]

    def residual_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(residuals (n, h), scale (n,)): calibration rows for conformal bands."""
        return self.y - self.f, self.scale if self.band_scale is None else self.band_scale


def ensemble_backtest(method: str, members: list[SpanBacktest | None]
                      ) -> SpanBacktest | None:
    """An ensemble's backtest from its members' (None when one has none): the mean or
    median of their forecasts, or for learned weights each window combined with weights
    fit on the other windows (one window: weights fit on it, an in-sample score)."""
    if not members or any(m is None for m in members):
        return None
    first = members[0]
    f = np.stack([m.f for m in members], axis=-1)  # (n, h, M)
    if method == "median":
        return _with_forecast(first, np.median(f, axis=-1))
    if method not in LEARNED:  # mean (bagging members have no backtest)
        return _with_forecast(first, f.mean(axis=-1))
    out, window = np.empty_like(first.y), first.window
    for k in range(first.n_windows):
        fit = window != k if first.n_windows > 1 else np.ones_like(window, dtype=bool)
        w = np.asarray(ensemble_weights(method, first.y[fit], f[fit], first.scale[fit]))
        out[window == k] = np.einsum("nhm,hm->nh", f[window == k], w)
    return _with_forecast(first, out)


def _with_forecast(like: SpanBacktest, f: np.ndarray) -> SpanBacktest:
    return SpanBacktest(like.y, f, like.scale, like.n_windows, like.n_series, like.ids,
                        band_scale=like.band_scale)


def member_arrays(members: list[SpanBacktest]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, forecasts (n, h, M), scale) of members backtested on the same windows: what a
    learned ensemble's weights are fit on."""
    first = members[0]
    return first.y, np.stack([m.f for m in members], axis=-1), first.scale
