"""The fits of a backtest: cut-offs counted from each series' end, the refit schedule, one
fit per model x refit group (here, or through a mapper in worker processes), and the
out-of-sample forecasts of a few models on the cut-offs of a training span (what the
``weighted``, ``stacking`` and ``greedy`` ensembles learn their weights from).

Kept apart from scoring and tracking (``backtest.py``) so that the ensembles of a train
and of a backtest can both ask for member forecasts without an import cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.schema import ID
from deepcast.features.windows import panel_from_frame
from deepcast.forecasting import conformal, graphs, metrics
from deepcast.pipelines import progress
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.modelling import Mapper, fit_model, prepare, training_settings


def backtest_cutoffs(lengths: np.ndarray, n_windows: int, step: int, horizon: int
                     ) -> np.ndarray:
    """History length at each cut-off, (n_series, n_windows); the last window ends at the
    last point of each series."""
    back = (n_windows - 1 - np.arange(n_windows)) * step
    return np.asarray(lengths, dtype=np.int64)[:, None] - horizon - back[None, :]


def refit_schedule(n_windows: int, refit: bool | int) -> list[list[int]]:
    """Groups of windows served by one fit (each fit at its group's first cut-off)."""
    every = 1 if refit is True else (n_windows if refit is False else int(refit))
    return [list(range(a, min(a + every, n_windows))) for a in range(0, n_windows, every)]


def history_before(df: pd.DataFrame, cuts: np.ndarray, size: int | None = None
                    ) -> pd.DataFrame:
    """The rows of each series before its cut-off (``cuts`` per series, panel order); with
    ``size``, only the last ``size`` of them (a sliding training window)."""
    pos = df.groupby(ID, sort=False).cumcount().to_numpy()
    limit = np.repeat(cuts, df.groupby(ID, sort=False).size().to_numpy())
    keep = pos < limit
    if size is not None:
        keep &= pos >= limit - size
    return df[keep].reset_index(drop=True)


@dataclass(frozen=True)
class BacktestJob:
    """One fit of a backtest, as plain data: a model fit on the history before the first
    cut-off of ``windows`` and predicting every window of that refit group."""

    entry: Any
    windows: tuple[int, ...]
    df: pd.DataFrame
    cfg: PipelineConfig
    cuts: np.ndarray  # (n_series, n_windows) history length at each cut-off
    #: in this process only (not through a mapper): (built forecaster, its prepared
    #: data) -> its ``WarmStart`` (training.warm_start), and whether to keep the fitted
    #: predictor in the result (for the next night's warm start)
    start: Callable[[Any, Any], Any] | None = None
    keep: bool = False

    @property
    def label(self) -> str:
        return f"{self.entry.label}-cutoff-{self.windows[0]}"


@dataclass
class WindowForecasts:
    """What one backtest fit returns: its forecasts (data, not the model)."""

    forecasts: pd.DataFrame  # unique_id, window, cutoff, ds, h, y, yhat..
    trainable: bool
    quantiles: tuple[float, ...]
    seconds: float
    predictor: Any = None  # the fitted model, when the job asked to keep it
    prep: Any = None  # what it was fit on, likewise


def backtest_fit(job: BacktestJob) -> WindowForecasts:
    """Fit ``job.entry`` before the group's first cut-off (scaler and covariate encoder
    too) and forecast each window of the group; the same in this process or a worker."""
    t0 = time.perf_counter()
    cfg, bt = job.cfg, job.cfg.evaluation.backtest
    train_df = history_before(job.df, job.cuts[:, job.windows[0]],
                              bt.train_size if bt.window == "sliding" else None)
    prep = prepare(train_df, cfg, holdout=0)
    start = job.start
    predictor, _, _ = fit_model(job.entry, prep, training_settings(cfg),
                                start=None if start is None else lambda f: start(f, prep))
    fc = predictor.predict_windows(job.df, job.cuts[:, list(job.windows)])
    fc["window"] = np.asarray(job.windows)[fc["window"].to_numpy()]
    if not job.keep:  # used no more: the next fit of this network reuses its traced graphs
        graphs.release(getattr(predictor.forecaster, "model", None))
    return WindowForecasts(fc, predictor.forecaster.trainable,
                           tuple(predictor.forecaster.quantiles),
                           time.perf_counter() - t0, *((predictor, prep) if job.keep else ()))


def run_fits(jobs: list[BacktestJob], mapper: Mapper | None) -> list[WindowForecasts]:
    """Every fit of the backtest, here one after the other or through ``mapper``."""
    with progress.task("backtest fits", len(jobs)) as advance:
        if mapper is None:
            fits = []
            for job in jobs:
                fits.append(backtest_fit(job))
                advance(1)
        else:
            fits = mapper(backtest_fit, jobs)
            advance(len(jobs))
    return fits


def joined(parts: list[WindowForecasts]) -> pd.DataFrame:
    """The forecasts of one model's fits, sorted by series, window and step."""
    fc = pd.concat([p.forecasts for p in parts], ignore_index=True)
    return fc.sort_values([ID, "window", "h"], kind="stable").reset_index(drop=True)


def check_first_cutoff(ids: np.ndarray, cuts: np.ndarray, cfg: PipelineConfig) -> None:
    """Every series has ``min_train_length`` points before its first cut-off."""
    n, need = cfg.lengths, cfg.min_train_length
    short = ids[cuts[:, 0] < need]
    if len(short):
        raise DataError(
            f"{len(short)} series are too short for {n.n_windows} backtest windows of step "
            f"{n.step}: the first cut-off leaves fewer than {need} "
            f"points to train on "
            f"({', '.join(map(str, short[:5]))}{' ...' if len(short) > 5 else ''})",
            hint="lower evaluation.backtest.n_windows or step, or drop these series")


@dataclass(frozen=True)
class MemberForecasts:
    """Out-of-sample forecasts of some models on the cut-offs of a training span, one row
    per series x cut-off: truth ``y`` (n, h), forecasts ``f`` (n, h, M), the seasonal
    naive MAE before each cut-off ``scale`` (n,), NaN where 0; ``fits``: trainable fits."""

    y: np.ndarray
    f: np.ndarray
    scale: np.ndarray
    fits: int = 0
    ids: np.ndarray | None = None  # the series of the row blocks, in row order
    kept: tuple[WindowForecasts, ...] = ()  # the fits, with their models when kept
    band_scale: np.ndarray | None = None  # (n,) conformal scale before each cut-off


def member_forecasts(train: pd.DataFrame, entries: list[Any], cfg: PipelineConfig,
                     mapper: Mapper | None = None, start: Callable[[Any, Any], Any] | None
                     = None, keep: bool = False) -> MemberForecasts:
    """Backtest ``entries`` on ``evaluation.backtest`` cut-offs counted from the end of
    ``train``, one fit each (``refit: false``); series too short for the first cut-off
    take no part. DataError when no series is long enough. ``start`` and ``keep`` as in
    :class:`BacktestJob` (without ``mapper``)."""
    bt, n = cfg.evaluation.backtest, cfg.lengths
    lengths = train.groupby(ID, sort=False).size()
    first_cut = lengths - n.backtest_span
    long_enough = lengths.index[first_cut >= cfg.min_train_length]
    if len(long_enough) == 0:
        raise DataError(
            "no series is long enough for the backtest that weighs the ensemble members "
            f"({n.n_windows} windows of step {n.step} before the forecast origin)",
            hint="lower evaluation.backtest.n_windows / step, or use method mean")
    train = train[train[ID].isin(long_enough)].reset_index(drop=True)
    inner = cfg.without_checkpoints().model_copy(update={
        "models": entries, "ensemble": [],
        "evaluation": cfg.evaluation.model_copy(update={
            "conformal": [], "backtest": bt.model_copy(update={"refit": False})})})
    panel = panel_from_frame(train)
    cuts = backtest_cutoffs(panel.lengths, n.n_windows, n.step, n.horizon)
    windows = tuple(range(n.n_windows))
    fits = run_fits([BacktestJob(e, windows, train, inner, cuts, start, keep)
                     for e in entries], mapper)
    first = joined(fits[:1])
    y = first["y"].to_numpy(np.float64)
    f = np.stack([joined([p])["yhat"].to_numpy(np.float64) for p in fits],
                 axis=-1).reshape(-1, n.horizon, len(entries))
    scale = metrics.cutoff_scales(panel, cuts, cfg.data.season_length).reshape(-1)
    bands = conformal.cutoff_band_scales(panel, cuts, cfg.data.season_length, n.horizon)
    return MemberForecasts(y.reshape(-1, n.horizon), f, np.where(scale > 0, scale, np.nan),
                           sum(p.trainable for p in fits), pd.unique(first[ID]),
                           tuple(fits) if keep else (), bands.reshape(-1))
