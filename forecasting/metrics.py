"""Forecast metrics, per series, then averaged across series.

All functions take ``y`` and ``yhat`` of shape (..., h) (NaN allowed) and return one value per
leading index (series, or series x cut-off); :func:`score` averages them. MASE is scaled by
the in-sample seasonal naive MAE of each series' *training span* (``season_length`` steps
back), RMSSE by the in-sample seasonal naive mean squared error. MAPE skips points where
``y`` is 0 (it is undefined there) and is NaN for a series of zeros.
"""

from __future__ import annotations

import warnings

import numpy as np

from deepcast.features.windows import Panel


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


def mape(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """Mean absolute percentage error in percent, over the points where y != 0."""
    ok = np.abs(y) > 0
    ratio = np.divide(np.abs(y - yhat), np.abs(y), out=np.full(y.shape, np.nan), where=ok)
    with warnings.catch_warnings():  # a series of zeros: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return 100.0 * np.nanmean(ratio, axis=-1)


def rmsse(y: np.ndarray, yhat: np.ndarray, sq_scale: np.ndarray) -> np.ndarray:
    """Root mean squared scaled error (M5): MSE over the in-sample seasonal naive MSE."""
    sq_scale = np.asarray(sq_scale, dtype=np.float64)
    safe = np.where(sq_scale > 0, sq_scale, np.nan)
    return np.sqrt(np.nanmean((y - yhat) ** 2, axis=-1) / safe)


def pinball(y: np.ndarray, q_pred: np.ndarray, levels) -> np.ndarray:
    """Mean pinball loss over horizon and levels; ``q_pred`` (..., h, n_levels)."""
    q = np.asarray(levels, dtype=np.float64)
    err = y[..., None] - q_pred
    return np.nanmean(np.maximum(q * err, (q - 1.0) * err), axis=(-2, -1))


def crps(y: np.ndarray, q_pred: np.ndarray, levels) -> np.ndarray:
    """CRPS approximated from quantiles: twice the mean pinball loss over the levels (the
    quantile decomposition of the CRPS, as GluonTS's mean weighted quantile loss)."""
    return 2.0 * pinball(y, q_pred, levels)


def wql(y: np.ndarray, q_pred: np.ndarray, levels) -> float:
    """Weighted quantile loss over every point (GluonTS, AutoGluon-TimeSeries): per level,
    the summed 2 x pinball loss over the summed |y|, then the mean over the levels."""
    return wql_of(*wql_parts(y, q_pred, levels))


def wql_parts(y: np.ndarray, q_pred: np.ndarray, levels) -> tuple[np.ndarray, float]:
    """The sums :func:`wql` is the ratio of: per level the summed 2 x pinball loss, and the
    summed |y| (over points with every quantile finite); sums of shards add up."""
    q = np.asarray(levels, dtype=np.float64)
    err = y[..., None] - q_pred
    loss = 2.0 * np.maximum(q * err, (q - 1.0) * err)
    ok = np.isfinite(loss).all(axis=-1)
    return loss[ok].sum(axis=0), float(np.abs(y)[ok].sum())


def wql_of(losses: np.ndarray, den: float) -> float:
    """:func:`wql` from its sums."""
    return float(np.mean(losses) / den) if den > 0 else float("nan")


def quantile_scores(y: np.ndarray, q_pred: np.ndarray, levels, scale: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """Per-series scores of a quantile forecast ``q_pred`` (..., h, n_levels): pinball and
    CRPS scaled by the MASE scale, and the coverage of the outer levels' band."""
    safe = np.where(np.asarray(scale) > 0, scale, np.nan)
    lo, hi = levels[0], levels[-1]
    return {"scaled_pinball": pinball(y, q_pred, levels) / safe,
            "scaled_crps": crps(y, q_pred, levels) / safe,
            f"coverage_q{100 * lo:g}_q{100 * hi:g}": coverage(y, q_pred[..., 0],
                                                             q_pred[..., -1])}


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Share of points inside [lo, hi]."""
    inside = ((y >= lo) & (y <= hi)).astype(np.float64)
    return np.nanmean(np.where(np.isnan(y), np.nan, inside), axis=-1)


def mase(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """MAE divided by the per-series naive scale (NaN where the scale is 0)."""
    scale = np.asarray(scale, dtype=np.float64)
    safe = np.where(scale > 0, scale, np.nan)
    return mae(y, yhat) / safe


def seasonal_scale(panel: Panel, n_train: np.ndarray, season_length: int,
                   power: int = 1, last: int | None = None) -> np.ndarray:
    """Mean |y_t - y_{t-m}| ** power over the first ``n_train[i]`` points of each series
    (power 1: the MASE scale; power 2: the RMSSE one), or over the ``last`` differences
    before ``n_train[i]`` only. Falls back to lag 1 for a series shorter than two seasons,
    so short (padded) series still get a scale."""
    out = np.full(panel.n_series, np.nan)
    for k, (a, n) in enumerate(zip(panel.starts, n_train, strict=True)):
        seg = panel.values[a : a + n].astype(np.float64)
        m = season_length if n > season_length else 1
        if n > m:
            diffs = np.abs(seg[m:] - seg[:-m])
            out[k] = np.mean((diffs if last is None else diffs[-last:]) ** power)
    return out


def cutoff_scales(panel: Panel, cuts: np.ndarray, season_length: int, power: int = 1
                  ) -> np.ndarray:
    """:func:`seasonal_scale` of the history before each cut-off: ``cuts`` (n_series, k)
    history lengths -> (n_series, k) scales."""
    return np.stack([seasonal_scale(panel, cuts[:, k], season_length, power)
                     for k in range(cuts.shape[1])], axis=1)


METRIC_NAMES = ("mae", "rmse", "smape", "mase")


def score(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """All point metrics, each the mean over series (series with an undefined value skipped)."""
    return {k: series_mean(v) for k, v in per_series_scores(y, yhat, scale).items()}


def per_series_scores(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """All point metrics of each series (what :func:`score` averages)."""
    return {"mae": mae(y, yhat), "rmse": rmse(y, yhat), "smape": smape(y, yhat),
            "mase": mase(y, yhat, scale)}


def series_mean(values: np.ndarray) -> float:
    """The mean of per-series values, series with an undefined value skipped (NaN when
    none is defined)."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def skill(metric: float, reference: float) -> float:
    """1 - metric / reference: > 0 beats the reference (seasonal naive), 0 ties it."""
    if not np.isfinite(reference) or reference == 0:
        return float("nan")
    return 1.0 - metric / reference
