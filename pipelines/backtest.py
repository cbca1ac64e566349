"""Backtest stage: rolling-origin evaluation of every model on the same cut-offs.

Cut-offs are counted from each series' end: window ``k`` of ``n_windows`` forecasts the
``horizon`` points after the first ``len - horizon - (n_windows - 1 - k) * step`` points, so
the last window ends at the last observation. Training windows expand by default: a model
fit for cut-off ``c`` sees every point before ``c`` (``window: sliding``: the last
``train_size`` of them) and nothing after (scalers and covariate encoders included). With
``refit: false`` one fit serves every window and all windows are predicted in one batched
call; ``refit: k`` refits every ``k`` windows.

Scores per model x cut-off x series (MAE, RMSE, MAPE, sMAPE, MASE, RMSSE; pinball and 80 %
coverage for quantile models; conformal coverage for windows after the first) and their
means, with skill against seasonal naive on the same cut-offs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.schema import ID
from deepcast.features.windows import panel_from_frame
from deepcast.forecasting import conformal, metrics
from deepcast.forecasting.keras_model import quantile_column
from deepcast.pipelines import progress
from deepcast.pipelines.config import ENTRY_MODELS, PipelineConfig
from deepcast.pipelines.modelling import Mapper, fit_model, prepare, training_settings
from deepcast.pipelines.tracking import tags as tag

if TYPE_CHECKING:  # annotations only: mlflow is imported where a run needs it
    from deepcast.pipelines.tracking import Tracker

log = logging.getLogger("deepcast")

METRICS = ("mae", "rmse", "mape", "smape", "mase", "rmsse")


@dataclass
class BacktestResult:
    """Every model's backtest forecasts and scores."""

    metric: str
    cutoffs: np.ndarray  # (n_series, n_windows) history length at each cut-off
    scale: np.ndarray  # (n_series, n_windows) seasonal naive MAE before each cut-off
    forecasts: dict[str, pd.DataFrame]  # model -> unique_id, window, cutoff, ds, h, y, yhat..
    per_window: pd.DataFrame  # model x window x series metrics
    summary: pd.DataFrame  # one row per model: mean metrics, skill, fits, seconds
    seconds: float


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


def backtest_fit(job: BacktestJob) -> WindowForecasts:
    """Fit ``job.entry`` before the group's first cut-off (scaler and covariate encoder
    too) and forecast each window of the group; the same in this process or a worker."""
    t0 = time.perf_counter()
    cfg, bt = job.cfg, job.cfg.evaluation.backtest
    train_df = history_before(job.df, job.cuts[:, job.windows[0]],
                              bt.train_size if bt.window == "sliding" else None)
    predictor, _, _ = fit_model(job.entry, prepare(train_df, cfg, holdout=0),
                                training_settings(cfg))
    fc = predictor.predict_windows(job.df, job.cuts[:, list(job.windows)])
    fc["window"] = np.asarray(job.windows)[fc["window"].to_numpy()]
    return WindowForecasts(fc, predictor.forecaster.trainable,
                           tuple(predictor.forecaster.quantiles),
                           time.perf_counter() - t0)


def run_backtest(df: pd.DataFrame, cfg: PipelineConfig, tracker: Tracker | None = None,
                 mapper: Mapper | None = None) -> BacktestResult:
    """Backtest every model of ``cfg`` (and seasonal naive, the reference) on ``df``: each
    fit (a model at the first cut-off of a refit group) here, or through ``mapper`` in
    worker processes."""
    t0 = time.perf_counter()
    bt, horizon = cfg.evaluation.backtest, cfg.features.horizon
    panel = panel_from_frame(df)
    cuts = backtest_cutoffs(panel.lengths, bt.n_windows, bt.step or horizon, horizon)
    _check_first_cutoff(panel.ids, cuts, cfg)
    cfg = cfg.without_checkpoints()
    entries = list(cfg.models)
    if not any(m.type == "seasonal_naive" for m in entries):
        entries.insert(0, ENTRY_MODELS["seasonal_naive"](type="seasonal_naive"))
    m = cfg.data.season_length
    scale = metrics.cutoff_scales(panel, cuts, m)
    sq_scale = metrics.cutoff_scales(panel, cuts, m, power=2)

    groups = refit_schedule(bt.n_windows, bt.refit)
    jobs = [BacktestJob(entry, tuple(windows), df, cfg, cuts)
            for entry in entries for windows in groups]
    fits = _run_fits(jobs, mapper)
    forecasts, tables, rows = {}, [], []
    for i, entry in enumerate(entries):
        t_model = time.perf_counter()
        parts = fits[i * len(groups):(i + 1) * len(groups)]
        fc = pd.concat([p.forecasts for p in parts], ignore_index=True).sort_values(
            [ID, "window", "h"], kind="stable")
        forecasts[entry.label] = fc.reset_index(drop=True)
        table, summary = score_windows(fc, panel.ids, scale, sq_scale, horizon,
                                       parts[0].quantiles, cfg.evaluation.conformal)
        table.insert(0, "model", entry.label)
        tables.append(table)
        seconds = time.perf_counter() - t_model + sum(p.seconds for p in parts)
        rows.append({"model": entry.label, "type": entry.type, **summary,
                     "fits": sum(p.trainable for p in parts), "seconds": round(seconds, 2)})
        log.info("%s: backtest %s = %.4f", entry.label, cfg.evaluation.metric,
                 summary[cfg.evaluation.metric])
    result = BacktestResult(cfg.evaluation.metric, cuts, scale, forecasts,
                            pd.concat(tables, ignore_index=True),
                            _with_skill(pd.DataFrame(rows), cfg.evaluation.metric),
                            time.perf_counter() - t0)
    if tracker is not None:
        log_backtest(result, cfg, tracker)
    return result


def _check_first_cutoff(ids: np.ndarray, cuts: np.ndarray, cfg: PipelineConfig) -> None:
    """Every series has ``min_train_length`` points before its first cut-off."""
    bt, need = cfg.evaluation.backtest, cfg.min_train_length
    short = ids[cuts[:, 0] < need]
    if len(short):
        raise DataError(
            f"{len(short)} series are too short for {bt.n_windows} backtest windows of step "
            f"{bt.step or cfg.features.horizon}: the first cut-off leaves fewer than {need} "
            f"points to train on "
            f"({', '.join(map(str, short[:5]))}{' ...' if len(short) > 5 else ''})",
            hint="lower evaluation.backtest.n_windows or step, or drop these series")


def _run_fits(jobs: list[BacktestJob], mapper: Mapper | None) -> list[WindowForecasts]:
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


def _with_skill(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``summary`` with skill columns against its seasonal naive row."""
    reference = summary.loc[summary["type"] == "seasonal_naive"].iloc[0]
    for name in ("mase", "smape", "rmsse", metric):
        summary[f"skill_{name}"] = [metrics.skill(v, reference[name]) for v in summary[name]]
    return summary


def score_windows(fc: pd.DataFrame, ids: np.ndarray, scale: np.ndarray, sq_scale: np.ndarray,
                  horizon: int, quantiles: tuple[float, ...] = (), levels=()
                  ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Metrics per window x series, and their means (``fc`` sorted by id, window, h)."""
    n, k = scale.shape
    y = fc["y"].to_numpy(np.float64).reshape(n, k, horizon)
    yhat = fc["yhat"].to_numpy(np.float64).reshape(n, k, horizon)
    per = {"mae": metrics.mae(y, yhat), "rmse": metrics.rmse(y, yhat),
           "mape": metrics.mape(y, yhat), "smape": metrics.smape(y, yhat),
           "mase": metrics.mase(y, yhat, scale), "rmsse": metrics.rmsse(y, yhat, sq_scale)}
    if quantiles:
        q = np.stack([fc[quantile_column(x)].to_numpy(np.float64) for x in quantiles],
                     axis=-1).reshape(n, k, horizon, len(quantiles))
        safe = np.where(scale > 0, scale, np.nan)
        per["scaled_pinball"] = metrics.pinball(y, q, quantiles) / safe
        lo, hi = quantiles[0], quantiles[-1]
        per[f"coverage_q{100 * lo:g}_q{100 * hi:g}"] = metrics.coverage(
            y, q[..., 0], q[..., -1])
    for level in levels:  # conformal: window j calibrated on windows < j only
        cover = np.full((n, k), np.nan)
        for j in range(1, k):
            table = conformal.calibrate((y[:, :j] - yhat[:, :j]).reshape(-1, horizon),
                                        scale[:, :j].reshape(-1), [level])
            lo_hi = conformal.apply(yhat[:, j], scale[:, j], table)
            lo, hi = (lo_hi[c] for c in conformal.interval_columns(level))
            cover[:, j] = metrics.coverage(y[:, j], lo, hi)
        per[f"conformal_coverage_{level:g}"] = cover
    table = pd.DataFrame({"window": np.tile(np.arange(k), n), ID: np.repeat(ids, k),
                          **{name: v.reshape(-1) for name, v in per.items()}})
    means = {name: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
             for name, v in per.items()}
    return table, means


def log_backtest(result: BacktestResult, cfg: PipelineConfig, tracker: Tracker) -> None:
    """One nested MLflow run per model with ``backtest_*`` metrics and its tables."""
    for row in result.summary.to_dict(orient="records"):
        name = row["model"]
        with tracker.run(f"backtest-{name}", nested=True,
                         tags={tag.MODEL_TYPE: row["type"], tag.PIPELINE: cfg.name,
                               tag.STAGE: "backtest"}):
            tracker.log_params({"evaluation.backtest": cfg.evaluation.backtest.model_dump(
                mode="json"), "model": name})
            tracker.log_metrics({f"backtest_{k}": v for k, v in row.items()
                                 if isinstance(v, float) and k not in ("seconds",)
                                 and np.isfinite(v)} | {"backtest_seconds": row["seconds"]})
            tracker.log_frame(result.per_window[result.per_window["model"] == name],
                              "backtest/per_window_metrics.csv")
            tracker.log_frame(result.forecasts[name], "backtest/forecasts.csv")
    tracker.log_frame(result.summary, "backtest/summary.csv")


def summary_records(result: BacktestResult) -> list[dict[str, Any]]:
    """The summary table as plain records (for the CLI and ``--json``)."""
    cols = ["model", "type", *METRICS, f"skill_{result.metric}", "fits", "seconds"]
    extra = [c for c in result.summary.columns if c.startswith(("scaled_pinball", "coverage",
                                                                "conformal"))]
    return result.summary[cols + extra].to_dict(orient="records")


