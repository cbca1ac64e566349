"""Backtest stage: rolling-origin evaluation of every model on the same cut-offs.

Cut-offs are counted from each series' end: window ``k`` of ``n_windows`` forecasts the
``horizon`` points after the first ``len - horizon - (n_windows - 1 - k) * step`` points, so
the last window ends at the last observation. Training windows expand by default: a model
fit for cut-off ``c`` sees every point before ``c`` (``window: sliding``: the last
``train_size`` of them) and nothing after (scalers and covariate encoders included). With
``refit: false`` one fit serves every window and all windows are predicted in one batched
call; ``refit: k`` refits every ``k`` windows.

Scores per model x cut-off x series (MAE, RMSE, MAPE, sMAPE, MASE, RMSSE; for quantile
models scaled pinball loss and CRPS, coverage of the outer quantiles' band and the weighted
quantile loss; conformal coverage for windows after the first) and their means, with skill
against seasonal naive on the same cut-offs. The ``ensemble:`` entries are scored on the
same cut-offs from their members' fits (``backtest_ensembles.py``); the fits themselves are
``backtest_fits.py``'s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepcast.features.hierarchy import LEVEL
from deepcast.features.schema import ID
from deepcast.features.windows import Panel, panel_from_frame
from deepcast.forecasting import conformal, metrics
from deepcast.forecasting.keras_model import quantile_column
from deepcast.pipelines.backtest_ensembles import BacktestPlan, backtest_ensemble, bagging_jobs
from deepcast.pipelines.backtest_fits import (
    BacktestJob,
    WindowForecasts,
    backtest_cutoffs,
    backtest_fit,
    check_first_cutoff,
    history_before,
    joined,
    refit_schedule,
    run_fits,
)
from deepcast.pipelines.backtest_levels import BacktestReconciler
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.modelling import Mapper
from deepcast.pipelines.selection import windows_allowed, with_windows
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
    skipped: dict[str, str] = field(default_factory=dict)  # ensemble -> why not scored
    calibration_windows: int | None = None  # windows before a cut-off calibrating its bands
    notes: list[str] = field(default_factory=list)  # what the scores rest on (reconciliation)

    @property
    def n_windows(self) -> int:
        return int(self.cutoffs.shape[1])


def run_backtest(df: pd.DataFrame, cfg: PipelineConfig, tracker: Tracker | None = None,
                 mapper: Mapper | None = None) -> BacktestResult:
    """Backtest every model of ``cfg`` (and seasonal naive, the reference) and every
    ensemble on ``df``: each fit (a model at the first cut-off of a refit group) here, or
    through ``mapper`` in worker processes. An ensemble combines its members' forecasts of
    the same fits (bagging: its own seeded fits; weighted / stacking / greedy: weights from
    an inner backtest before each refit cut-off); one that cannot be backtested is named in
    ``skipped`` with the reason."""
    t0 = time.perf_counter()
    bt, n = cfg.evaluation.backtest, cfg.lengths
    panel = panel_from_frame(df)
    fit = windows_allowed(panel.lengths, cfg, 1.0) if bt.n_windows is None else 0
    if 0 < fit < n.n_windows:  # the default count, cut to what the shortest series allow
        log.warning("backtest: %d windows by default (two seasons or 100 points); the "
                    "shortest series allow %d", n.n_windows, fit)
        cfg = with_windows(cfg, fit)
        n = cfg.lengths
    cuts = backtest_cutoffs(panel.lengths, n.n_windows, n.step, n.horizon)
    check_first_cutoff(panel.ids, cuts, cfg)
    cfg = cfg.without_checkpoints()
    entries = cfg.scored_models
    plan = BacktestPlan(df, cfg, cuts, refit_schedule(n.n_windows, bt.refit), mapper)
    jobs = [BacktestJob(entry, tuple(windows), df, cfg, cuts)
            for entry in entries for windows in plan.groups]
    jobs += [job for spec in cfg.ensemble for job in bagging_jobs(spec, plan)]
    fits: dict[str, list[WindowForecasts]] = {}
    for job, fit in zip(jobs, run_fits(jobs, mapper), strict=True):
        fits.setdefault(job.entry.label, []).append(fit)

    board = _Board(panel, cuts, cfg, df)
    for entry in entries:
        parts = fits[entry.label]
        board.add(entry.label, entry.type, joined(parts), parts[0].quantiles,
                  sum(p.trainable for p in parts), sum(p.seconds for p in parts))
    skipped: dict[str, str] = {}
    for spec in cfg.ensemble:
        ens = backtest_ensemble(spec, fits, plan)
        if ens.forecasts is None:
            skipped[spec.name] = ens.skipped
            log.warning("ensemble %s skipped in the backtest: %s", spec.name, ens.skipped)
            continue
        board.add(spec.name, f"ensemble-{spec.method}", ens.forecasts, (), ens.fits,
                  ens.seconds)
    metric = cfg.evaluation.metric
    per_window = pd.concat(board.tables, ignore_index=True)
    summary = _with_levels(with_skill(pd.DataFrame(board.rows), metric), per_window, df,
                           metric)
    result = BacktestResult(metric, cuts, board.scale, board.forecasts, per_window, summary,
                            time.perf_counter() - t0, skipped, cfg.calibration_windows,
                            board.reconcile.notes if board.reconcile else [])
    if tracker is not None:
        log_backtest(result, cfg, tracker)
    return result


class _Board:
    """The scores of a backtest as models and ensembles are added: forecasts, the
    per-window table and one summary row each."""

    def __init__(self, panel: Panel, cuts: np.ndarray, cfg: PipelineConfig,
                 df: pd.DataFrame) -> None:
        m = cfg.data.season_length
        # a hierarchy's forecasts are scored reconciled, as train serves them
        self.reconcile = BacktestReconciler(df, cfg, panel) if cfg.hierarchy is not None \
            else None
        self.ids, self.cfg = panel.ids, cfg
        self.scale = metrics.cutoff_scales(panel, cuts, m)
        self.sq_scale = metrics.cutoff_scales(panel, cuts, m, power=2)
        self.band_scale = conformal.cutoff_band_scales(panel, cuts, m, cfg.features.horizon)
        self.forecasts: dict[str, pd.DataFrame] = {}
        self.tables: list[pd.DataFrame] = []
        self.rows: list[dict[str, Any]] = []

    def add(self, label: str, kind: str, fc: pd.DataFrame, quantiles: tuple[float, ...],
            fits: int, seconds: float) -> None:
        """Score ``fc`` (sorted by series, window, step) under ``label``."""
        t0, ev = time.perf_counter(), self.cfg.evaluation
        fc = self.reconcile(label, fc) if self.reconcile is not None else fc
        self.forecasts[label] = fc
        table, summary = score_windows(fc, self.ids, self.scale, self.sq_scale,
                                       self.cfg.features.horizon, quantiles,
                                       BandScoring(tuple(ev.conformal), self.cfg.lengths.step,
                                                   self.cfg.calibration_windows,
                                                   self.band_scale))
        table.insert(0, "model", label)
        self.tables.append(table)
        self.rows.append({"model": label, "type": kind, **summary, "fits": fits,
                          "seconds": round(time.perf_counter() - t0 + seconds, 2)})
        log.info("%s: backtest %s = %.4f", label, ev.metric, summary[ev.metric])


def with_skill(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``summary`` with skill columns against its seasonal naive row."""
    reference = summary.loc[summary["type"] == "seasonal_naive"].iloc[0]
    for name in ("mase", "smape", "rmsse", metric):
        summary[f"skill_{name}"] = [metrics.skill(v, reference[name]) for v in summary[name]]
    return summary


def _with_levels(summary: pd.DataFrame, per_window: pd.DataFrame, df: pd.DataFrame,
                 metric: str) -> pd.DataFrame:
    """A hierarchy's backtest: ``summary`` with one ``<metric>_<level>`` column per level
    (the mean over that level's series and windows, of the reconciled forecasts)."""
    if LEVEL not in df.columns:
        return summary
    level = df.drop_duplicates(ID).set_index(ID)[LEVEL]
    table = per_window.assign(**{LEVEL: per_window[ID].map(level)})
    means = table.groupby(["model", LEVEL], sort=False)[metric].mean().unstack(LEVEL)
    means.columns = [f"{metric}_{c}" for c in means.columns]
    return summary.merge(means, left_on="model", right_index=True, how="left")


@dataclass(frozen=True)
class BandScoring:
    """The conformal levels whose coverage a backtest measures, the distance between its
    cut-offs (None: the horizon), how many windows before a cut-off calibrate its bands
    (None: all of them), and the series' conformal scale before each cut-off (n_series,
    k; None: the metrics' scale)."""

    levels: tuple[float, ...]
    step: int | None = None
    calibration_windows: int | None = None
    scale: np.ndarray | None = None


def score_windows(fc: pd.DataFrame, ids: np.ndarray, scale: np.ndarray, sq_scale: np.ndarray,
                  horizon: int, quantiles: tuple[float, ...] = (),
                  bands: BandScoring | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Metrics per window x series, and their means (``fc`` sorted by id, window, h).
    Conformal ``bands``: each window's bands are calibrated on the residuals observed
    before its cut-off only (with cut-offs closer than the horizon, an earlier window's
    last steps fall on this window's own dates), of its last ``calibration_windows``
    windows, as ``train`` calibrates the bands it serves (errors are not exchangeable over
    years: bands calibrated on all history measure other bands than those served)."""
    levels, step = (bands.levels, bands.step) if bands else ((), None)
    n, k = scale.shape
    last = (bands.calibration_windows if bands else None) or k
    by = scale if bands is None or bands.scale is None else bands.scale  # the bands' scale
    y = fc["y"].to_numpy(np.float64).reshape(n, k, horizon)
    yhat = fc["yhat"].to_numpy(np.float64).reshape(n, k, horizon)
    per = {"mae": metrics.mae(y, yhat), "rmse": metrics.rmse(y, yhat),
           "mape": metrics.mape(y, yhat), "smape": metrics.smape(y, yhat),
           "mase": metrics.mase(y, yhat, scale), "rmsse": metrics.rmsse(y, yhat, sq_scale)}
    if quantiles:
        q = np.stack([fc[quantile_column(x)].to_numpy(np.float64) for x in quantiles],
                     axis=-1).reshape(n, k, horizon, len(quantiles))
        per |= metrics.quantile_scores(y, q, quantiles, scale)
    seen = np.arange(horizon)[None, :] < (np.arange(k, 0, -1)[:, None] * (step or horizon))
    for level in levels:  # conformal: window j calibrated on what was seen by its cut-off
        cover = np.full((n, k), np.nan)
        for j in range(1, k):  # seen[k - j + i]: window i's steps observed by cut-off j
            a = max(0, j - last)  # the earliest window that calibrates window j
            past = np.where(seen[k - j + a:], y[:, a:j] - yhat[:, a:j], np.nan)
            table = conformal.calibrate(past.reshape(-1, horizon),
                                        by[:, a:j].reshape(-1), [level]).table
            if not table:  # too few earlier residuals for this level: coverage undefined
                continue
            lo_hi = conformal.apply(yhat[:, j], by[:, j], table)
            lo, hi = (lo_hi[c] for c in conformal.interval_columns(level))
            # a step no residual calibrated yet has no band: not scored, not a miss
            banded = np.isfinite(np.asarray(next(iter(table.values())), dtype=np.float64))
            cover[:, j] = metrics.coverage(np.where(banded, y[:, j], np.nan), lo, hi)
        per[f"conformal_coverage_{level:g}"] = cover
    table = pd.DataFrame({"window": np.tile(np.arange(k), n), ID: np.repeat(ids, k),
                          **{name: v.reshape(-1) for name, v in per.items()}})
    means = {name: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
             for name, v in per.items()}
    if quantiles:  # a ratio of sums over every point, not a mean over series
        means["wql"] = metrics.wql(y, q, quantiles)
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
            if name in result.forecasts:  # (a backtest from shards keeps them there)
                tracker.log_frame(result.forecasts[name], "backtest/forecasts.csv")
    tracker.log_frame(result.summary, "backtest/summary.csv")
    if result.skipped:
        tracker.log_dict(result.skipped, "backtest/skipped.json")


def summary_records(result: BacktestResult) -> list[dict[str, Any]]:
    """The summary table as plain records (for the CLI and ``--json``)."""
    cols = ["model", "type", *METRICS, f"skill_{result.metric}", "fits", "seconds"]
    extra = [c for c in result.summary.columns
             if c.startswith(("scaled_pinball", "scaled_crps", "wql", "coverage", "conformal",
                              f"{result.metric}_"))]
    return result.summary[cols + extra].to_dict(orient="records")


def summary_notes(result: BacktestResult) -> list[str]:
    """What the reader of the summary should know: scores that rest on one window, every
    ensemble left out of the table with the reason, conformal coverage not measurable."""
    notes = []
    if result.n_windows < 2:
        notes.append("the scores rest on one window (one cut-off per series): a single "
                     "origin is a noisy estimate; 3 or more windows give a steadier one "
                     "(evaluation.backtest.n_windows; --n-windows on the command line, "
                     "n_windows= in Python)")
    notes += [f"ensemble {name} skipped: {why}" for name, why in result.skipped.items()]
    notes += result.notes
    for col in [c for c in result.summary.columns if c.startswith("conformal_coverage_")]:
        unmeasured = result.summary.loc[result.summary[col].isna(), "model"].tolist()
        level = col.removeprefix("conformal_coverage_")
        if unmeasured:
            notes.append(f"conformal {level} % coverage not measured for "
                         f"{', '.join(map(str, unmeasured))}: the "
                         f"{result.calibration_windows or 'earlier'} windows before each "
                         "cut-off that calibrate its bands (evaluation.backtest."
                         "calibration_windows; by default as many as train calibrates on) "
                         f"hold fewer than {conformal.needed(float(level))} residuals per "
                         "horizon step (more series or windows)")
    return notes


__all__ = ["METRICS", "BacktestJob", "BacktestResult", "WindowForecasts", "backtest_cutoffs",
           "backtest_fit", "history_before", "log_backtest", "refit_schedule",
           "run_backtest", "score_windows", "summary_notes", "summary_records"]
