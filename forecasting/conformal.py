"""Conformal prediction intervals for any model, from out-of-sample residuals.

Split conformal, normalised per series: a residual ``|y - yhat|`` is divided by the series'
scale (the in-sample seasonal naive MAE of its history, the MASE denominator), so one table
serves series of any size. For each level and horizon step the table holds the
finite-sample-corrected quantile of those scores; the interval is
``yhat +- q[h] * scale``. The residuals must come from forecasts the model made without
seeing the points (backtest windows or the holdout), never from in-sample fits.
"""

from __future__ import annotations

import numpy as np


def interval_columns(level: float) -> tuple[str, str]:
    """Forecast columns of a central interval: 80 -> yhat_lo_80, yhat_hi_80."""
    return f"yhat_lo_{level:g}", f"yhat_hi_{level:g}"


def calibrate(residuals: np.ndarray, scale: np.ndarray, levels) -> dict[str, list[float]]:
    """Per level (percent) and horizon step, the conformal quantile of normalised absolute
    residuals. ``residuals`` (n, h) from out-of-sample forecasts, ``scale`` (n,)."""
    scale = np.asarray(scale, dtype=np.float64)
    safe = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)
    scores = np.abs(np.asarray(residuals, dtype=np.float64)) / safe[:, None]
    table: dict[str, list[float]] = {}
    for level in levels:
        alpha = float(level) / 100.0
        per_step = []
        for h in range(scores.shape[1]):
            s = np.sort(scores[:, h][np.isfinite(scores[:, h])])
            if len(s) == 0:
                per_step.append(float("nan"))
                continue
            rank = min(int(np.ceil((len(s) + 1) * alpha)), len(s))  # finite-sample correction
            per_step.append(float(s[rank - 1]))
        table[f"{float(level):g}"] = per_step
    return table


def apply(yhat: np.ndarray, scale: np.ndarray, table: dict[str, list[float]]
          ) -> dict[str, np.ndarray]:
    """Interval columns for point forecasts ``yhat`` (n, h) of series with ``scale`` (n,)."""
    out = {}
    width = np.asarray(scale, dtype=np.float64)[:, None]
    for level, q in table.items():
        lo, hi = interval_columns(float(level))
        half = width * np.asarray(q, dtype=np.float64)[None, : yhat.shape[1]]
        out[lo], out[hi] = yhat - half, yhat + half
    return out
