"""Conformal prediction intervals for any model, from out-of-sample residuals.

Split conformal, normalised per series: a residual ``|y - yhat|`` is divided by the series'
scale, so one table serves series of any size. The scale is the series' recent volatility
(:func:`band_scale`: the seasonal naive MAE of its last two seasons, at least one horizon,
before the forecast origin), not its whole history's (the MASE denominator): errors are
not exchangeable over time -- a calm recent year after turbulent ones, a summer of volatile
electricity demand after a calm winter -- and a whole-history scale gave 80 % bands that
covered 84-88 % on backtests of aus_retail and vic_elec, against 81-82 % with the recent
scale (benchmarks/README.md). For each level and horizon step the table holds the
finite-sample-corrected quantile of those scores; the interval is ``yhat +- q[h] * scale``.
The residuals must come from forecasts the model made without seeing the points (backtest
windows or the holdout), never from in-sample fits.

A level needs enough residuals: with ``n`` of them the finite-sample rank
``ceil((n + 1) * level)`` must not pass ``n`` (19 for 95 %, 4 for 80 %). Below that the
quantile does not exist -- capping the rank at the largest residual gave every level the
same band, too narrow for its promise -- so such a level is left out of the table and
named in :attr:`Calibration.notes`, never printed silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from deepcast.features.windows import Panel
from deepcast.forecasting.metrics import seasonal_scale

#: what a table's scores were divided by: each series' recent volatility (this module's
#: rule) or, in bundles saved before it, its whole history's seasonal naive MAE
RECENT, HISTORY = "recent", "history"


def interval_columns(level: float) -> tuple[str, str]:
    """Forecast columns of a central interval: 80 -> yhat_lo_80, yhat_hi_80."""
    return f"yhat_lo_{level:g}", f"yhat_hi_{level:g}"


def _alpha(level: float) -> Fraction:
    return Fraction(str(float(level))) / 100  # exact: 0.8 * 5 is 4, not 4.000000000000001


def rank(n: int, level: float) -> int:
    """The finite-sample conformal rank (1-based) of a ``level`` % interval among ``n``
    sorted scores: ``ceil((n + 1) * level / 100)``; above ``n`` when there are too few."""
    return math.ceil((n + 1) * _alpha(level))


def needed(level: float) -> int:
    """The fewest residuals for which a ``level`` % interval has its finite-sample rank:
    the smallest n with ``rank(n, level) <= n``."""
    alpha = _alpha(level)
    return max(math.ceil(alpha / (1 - alpha)), 1)


@dataclass
class Calibration:
    """A conformal table (level -> quantile per horizon step) and the levels left out."""

    table: dict[str, list[float]]
    #: level -> (residuals at its thinnest calibrated step, residuals it needs)
    left_out: dict[str, tuple[int, int]] = field(default_factory=dict)

    def notes(self, where: str = "") -> list[str]:
        """One line per level left out, saying why and how to get it back."""
        return [f"conformal {level} %: left out{where}: {n} calibration residual"
                f"{'s' * (n != 1)} per horizon step, {need} needed for its coverage "
                "guarantee; add series or lengthen evaluation.test_size (each further "
                "horizon of holdout adds one residual per series and step)"
                for level, (n, need) in self.left_out.items()]

    def filled(self) -> Calibration:
        """Steps no residual reached (a holdout shorter than the horizon) take the widest
        calibrated step; in place."""
        for level, q in self.table.items():
            reached = [x for x in q if np.isfinite(x)]
            self.table[level] = [x if np.isfinite(x) else max(reached, default=float("nan"))
                                 for x in q]
        return self


def recent_span(season_length: int, horizon: int) -> int:
    """Seasonal differences the recent scale averages: two seasons, at least a horizon."""
    return max(2 * season_length, horizon)


def band_scale(panel: Panel, n_train: np.ndarray, season_length: int, horizon: int,
               rule: str = RECENT) -> np.ndarray:
    """Each series' conformal scale at the origin after its first ``n_train`` points: the
    seasonal naive MAE of the :func:`recent_span` before it, or of the whole history where
    that is 0 or undefined (a flat recent stretch), or always with ``rule`` HISTORY."""
    if rule == HISTORY:
        return seasonal_scale(panel, n_train, season_length)
    recent = seasonal_scale(panel, n_train, season_length,
                            last=recent_span(season_length, horizon))
    usable = np.isfinite(recent) & (recent > 0)
    if usable.all():  # the whole history's scale only where needed (a per-series loop)
        return recent
    return np.where(usable, recent, seasonal_scale(panel, n_train, season_length))


def cutoff_band_scales(panel: Panel, cuts: np.ndarray, season_length: int, horizon: int
                       ) -> np.ndarray:
    """:func:`band_scale` before each cut-off: ``cuts`` (n_series, k) history lengths ->
    (n_series, k)."""
    return np.stack([band_scale(panel, cuts[:, k], season_length, horizon)
                     for k in range(cuts.shape[1])], axis=1)


def holdout_band_scales(panel: Panel, first_cut: np.ndarray, test_size: int,
                        season_length: int, horizon: int) -> np.ndarray:
    """:func:`band_scale` at each forecast origin of a holdout of ``test_size`` points
    forecast ``horizon`` steps at a time: origin ``o`` follows the first ``first_cut +
    o * horizon`` points of each series -> (n_series, origins)."""
    origins = -(-test_size // horizon)
    ends = first_cut[:, None] + horizon * np.arange(origins)[None, :]
    return cutoff_band_scales(panel, np.minimum(ends, panel.lengths[:, None]), season_length,
                              horizon)


def calibrate(residuals: np.ndarray, scale: np.ndarray, levels) -> Calibration:
    """Per level (percent) and horizon step, the conformal quantile of normalised absolute
    residuals. ``residuals`` (n, h) from out-of-sample forecasts, ``scale`` (n,). A step
    with no residual is NaN; a level with too few residuals at some step is left out."""
    scale = np.asarray(scale, dtype=np.float64)
    safe = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)
    scores = np.abs(np.asarray(residuals, dtype=np.float64)) / safe[:, None]
    steps = [np.sort(scores[:, h][np.isfinite(scores[:, h])]) for h in range(scores.shape[1])]
    thinnest = min((len(s) for s in steps if len(s)), default=None)  # steps with residuals
    out = Calibration({})
    for level in levels:
        key, need = f"{float(level):g}", needed(level)
        if thinnest is not None and thinnest < need:
            out.left_out[key] = (thinnest, need)
            continue
        out.table[key] = [float(s[rank(len(s), level) - 1]) if len(s) else float("nan")
                          for s in steps]
    return out


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
