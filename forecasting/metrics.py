"""Point-forecast metrics, per series, then averaged across series.

All functions take ``y`` and ``yhat`` of shape (n_series, h) (NaN-padded rows allowed) and
return one value per series; :func:`score` averages them. MASE is scaled by the in-sample
seasonal naive MAE of each series' *training span* (``season_length`` steps back).
"""

from __future__ import annotations

import numpy as np

from features.windows import Panel


def mae(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    return np.nanmean(np.abs(y - yhat), axis=-1)


def rmse(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    return np.sqrt(np.nanmean((y - yhat) ** 2, axis=-1))


def smape(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """Symmetric MAPE in percent (0..200); a point where y = yhat = 0 counts as 0."""
    num = np.abs(y - yhat)
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)
    ratio = np.where(np.isnan(y) | np.isnan(yhat), np.nan, ratio)
    return 200.0 * np.nanmean(ratio, axis=-1)


def mase(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """MAE divided by the per-series naive scale (NaN where the scale is 0)."""
    scale = np.asarray(scale, dtype=np.float64)
    safe = np.where(scale > 0, scale, np.nan)
    return mae(y, yhat) / safe


def seasonal_scale(panel: Panel, n_train: np.ndarray, season_length: int) -> np.ndarray:
    """Mean |y_t - y_{t-m}| over the first ``n_train[i]`` points of each series."""
    out = np.full(panel.n_series, np.nan)
    for k, (a, n) in enumerate(zip(panel.starts, n_train, strict=True)):
        seg = panel.values[a : a + n].astype(np.float64)
        if n > season_length:
            out[k] = np.mean(np.abs(seg[season_length:] - seg[:-season_length]))
    return out


METRIC_NAMES = ("mae", "rmse", "smape", "mase")


def score(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """All point metrics, each the mean over series (series with an undefined value skipped)."""
    per_series = {
        "mae": mae(y, yhat),
        "rmse": rmse(y, yhat),
        "smape": smape(y, yhat),
        "mase": mase(y, yhat, scale),
    }
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
            for k, v in per_series.items()}


def skill(metric: float, reference: float) -> float:
    """1 - metric / reference: > 0 beats the reference (seasonal naive), 0 ties it."""
    if not np.isfinite(reference) or reference == 0:
        return float("nan")
    return 1.0 - metric / reference
