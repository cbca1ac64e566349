"""Model selection on several windows (cross-validation), and the residuals it leaves.

A model's holdout forecast is one or two forecast origins per series: a model can win it
by luck (one New Year's Eve). With ``evaluation.selection: backtest`` every model is also
backtested inside the training span (``evaluation.backtest`` windows, one fit before the
first cut-off, every window predicted in one batched call: ``refit: false``), and the model
is chosen on the mean of its per-window scores over those windows and the holdout's
origins. The same out-of-sample residuals calibrate its conformal bands (cross-validation
conformal) and fit the learned ensembles' weights; an ensemble's own backtest is its
members' forecasts combined, with learned weights cross-fitted (each window combined with
weights fit on the other windows, so no window scores weights it helped fit).

The served model is the one fit on the whole training span and scored on the holdout; the
promotion gate still scores the holdout's cut-offs only (the champion was trained on the
training span, so only the holdout is out of sample for both).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError, RunFailed
from deepcast.forecasting.crossval import SpanBacktest
from deepcast.forecasting.evaluate import split_holdout
from deepcast.forecasting.metrics import per_series_scores, series_mean
from deepcast.pipelines.backtest_fits import member_forecasts
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.modelling import Holdout, ModelResult, PreparedData

log = logging.getLogger("deepcast")

SHARE = 0.5  # the selection backtest runs when at least this share of series is long enough


def selection_windows(prep: PreparedData, cfg: PipelineConfig) -> int:
    """Backtest windows of the selection inside the training span: ``evaluation.backtest``'s
    count (default: two seasons or 100 points, at least 3), fewer where the data does not
    allow them (at least half of the series long enough for the first cut-off); 0 with
    ``selection: holdout`` or when not even one window fits."""
    if cfg.evaluation.selection != "backtest":
        return 0
    return windows_allowed(prep.panel.lengths - prep.require_holdout().size, cfg, SHARE)


def windows_allowed(lengths: np.ndarray, cfg: PipelineConfig, share: float) -> int:
    """The most backtest windows, up to ``cfg``'s count, whose first cut-off leaves
    ``min_train_length`` points in at least ``share`` of the series of ``lengths``; 0 when
    not even one window does."""
    n = cfg.lengths
    for k in range(n.n_windows, 0, -1):
        first_cut = lengths - n.horizon - (k - 1) * n.step
        if np.mean(first_cut >= cfg.min_train_length) >= share:
            return k
    return 0


def with_windows(cfg: PipelineConfig, windows: int) -> PipelineConfig:
    """``cfg`` with ``evaluation.backtest.n_windows`` set (its bands still calibrated on
    as many windows as the YAML's own count gives)."""
    ev = cfg.evaluation
    return cfg.model_copy(update={"evaluation": ev.model_copy(update={
        "backtest": ev.backtest.model_copy(update={
            "n_windows": windows, "calibration_windows": cfg.calibration_windows})})})


def model_backtest(entry: Any, prep: PreparedData, cfg: PipelineConfig, windows: int,
                   start: Callable[[Any, Any], Any] | None = None, keep: bool = False
                   ) -> SpanBacktest | None:
    """``entry`` backtested on ``windows`` cut-offs inside the training span (the holdout is
    never seen): one fit, one batched predict. None when ``windows`` is 0 or no series is
    long enough. ``start``: (forecaster, its data) -> its warm start; ``keep``: the
    result keeps the fitted model (``fit``) and its data."""
    if windows < 1:
        return None
    train, _ = split_holdout(prep.df, prep.require_holdout().size)
    try:
        out = member_forecasts(train, [entry], with_windows(cfg, windows), start=start,
                               keep=keep)
    except DataError as exc:
        log.warning("%s: no selection backtest: %s", entry.label, exc)
        return None
    rows = len(out.y)
    kept = out.kept[0] if out.kept else None
    return SpanBacktest(out.y, out.f[..., 0], out.scale, windows, rows // windows, out.ids,
                        kept and kept.predictor, kept and kept.prep, out.band_scale)


def window_scores(fc: pd.DataFrame, holdout: Holdout, horizon: int, metric: str
                  ) -> list[float]:
    """``metric`` of each forecast origin of the holdout (``horizon`` steps each, the last
    one possibly shorter), over every series: the holdout forecast ``fc`` scored window
    by window."""
    by_origin = origin_scores(fc, holdout, horizon, metric)
    return [series_mean(by_origin[:, j]) for j in range(by_origin.shape[1])]


def origin_scores(fc: pd.DataFrame, holdout: Holdout, horizon: int, metric: str
                  ) -> np.ndarray:
    """``metric`` of each series (rows) at each forecast origin of the holdout (columns):
    what :func:`window_scores` averages (shards send theirs, the driver averages)."""
    y, yhat = holdout.truth_and_forecast(fc)
    return np.stack([per_series_scores(y[:, a:a + horizon], yhat[:, a:a + horizon],
                                       holdout.scale)[metric]
                     for a in range(0, holdout.size, horizon)], axis=1)


@dataclass(frozen=True)
class Choice:
    """The model a ``train`` serves, and why when it is not the lowest score."""

    model: ModelResult
    lowest: ModelResult  # the model with the lowest selection score
    se: float = float("nan")  # paired standard error of model - lowest over the windows
    within: float = 0.0  # evaluation.prefer_ensemble

    def note(self, metric: str) -> str | None:
        """One line when an ensemble is served in place of a lower score (None if not)."""
        if self.model is self.lowest:
            return None
        a, b = self.model.selection_score(metric), self.lowest.selection_score(metric)
        n = len(self.model.selection_scores)
        return (f"served {self.model.name} ({self.model.family}, select_{metric} {a:.4g}) "
                f"rather than {self.lowest.name} ({b:.4g}): they differ by {a - b:.3g}, "
                f"within evaluation.prefer_ensemble = {self.within:g} paired standard errors "
                f"(one is {self.se:.3g} over {n} windows): noise; 0 serves the lowest score")


def choose(models: list[ModelResult], metric: str, within: float) -> Choice:
    """The model with the lowest selection score, or an ensemble whose score is within
    ``within`` paired standard errors of it (the mean of their per-window differences,
    over the same windows, at least two): a difference that size is noise, and an
    ensemble varies less from one window to the next than the models it combines.
    Chosen on the validation spans of twelve benchmark sets (``benchmarks/README.md``,
    "Which model is served"). RunFailed when no model has a finite score."""
    finite = [m for m in models if np.isfinite(m.metrics.get(metric, np.nan))
              and np.isfinite(m.selection_score(metric))]
    if not finite:
        raise RunFailed(f"no model produced a finite holdout {metric}")
    lowest = min(finite, key=lambda m: m.selection_score(metric))
    tied = []
    for m in finite if within > 0 else ():
        if m is lowest or not m.family.startswith("ensemble-"):
            continue
        diff = np.subtract(m.selection_scores, lowest.selection_scores) \
            if len(m.selection_scores) == len(lowest.selection_scores) else np.array([])
        if len(diff) < 2 or not np.all(np.isfinite(diff)):
            continue
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff)))
        if float(np.mean(diff)) <= within * se:
            tied.append((m.selection_score(metric), m.name, m, se))
    if not tied:
        return Choice(lowest, lowest)
    _, _, model, se = min(tied, key=lambda t: t[:2])
    return Choice(model, lowest, se, within)
