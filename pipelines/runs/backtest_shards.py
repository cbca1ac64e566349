"""``backtest`` from shards: the rolling-origin backtest of ``deepcast backtest`` when no
process may hold the panel (the terms of :func:`.train_from_shards.trains_in_shards`).

Each worker reads, validates and prepares its shards to fit on what precedes every
series' first cut-off, and keeps the validated rows. Every model (and seasonal naive, the
reference) is fit once on the window stream of all shards (``refit: false``: one fit
serves every window), each worker forecasts its series' windows in one batched call and
scores them per series and window (``backtest.score_windows``), and the driver takes the
same means as an in-memory backtest over the tables the workers send back (the weighted
quantile loss from summed parts). With one shard the table equals ``run_backtest``'s.

Not from shards (said in the notes): ensembles, conformal coverage (each window's bands
are calibrated on every series' earlier residuals at once), refits per cut-off (refused);
the default window count is not cut to the shortest series (a series too short for the
first cut-off is named, as ``backtest`` names it with ``evaluation.backtest.n_windows``
set).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.errors import ConfigError
from deepcast.pipelines.backtest import BacktestResult, score_windows
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.results import BacktestResult as JobResult
from deepcast.pipelines.runs import store
from deepcast.pipelines.runs.base import RunInputs, Steps, run_tags
from deepcast.pipelines.runs.train_shards import (
    PreparedShards,
    check_shard_training,
    prepare_shards,
)
from deepcast.pipelines.selection import with_windows
from deepcast.pipelines.shard_parts import Part, bundle_bytes, unpacked
from deepcast.pipelines.tracking import tags as tag

log = logging.getLogger("deepcast")


@dataclass(frozen=True)
class WindowScores:
    """A shard's backtest scores: per series x window, and the weighted quantile loss's
    sums (quantile forecasts)."""

    table: pd.DataFrame
    wql_parts: tuple[np.ndarray, float] | None = None


def score_part_windows(part: Part, bundle: bytes) -> WindowScores | None:
    """Forecast every backtest window of the part's series with the fitted model and
    score them (in the worker holding the part, on its windows and their scales)."""
    from deepcast.forecasting import metrics
    from deepcast.forecasting.keras_model import quantile_column

    w = part.windows
    if part.prep is None or w is None:
        return None
    predictor = unpacked(bundle)
    horizon, quantiles = predictor.horizon, tuple(predictor.forecaster.quantiles)
    fc = w.forecast(predictor)
    table, _ = score_windows(fc, w.ids, w.scale, w.sq_scale, horizon, quantiles)
    if not quantiles:
        return WindowScores(table)
    n, k = w.cuts.shape
    y = fc["y"].to_numpy(np.float64).reshape(n, k, horizon)
    q = np.stack([fc[quantile_column(x)].to_numpy(np.float64) for x in quantiles],
                 axis=-1).reshape(n, k, horizon, len(quantiles))
    return WindowScores(table, metrics.wql_parts(y, q, quantiles))


def backtest_windows(cfg: PipelineConfig) -> int:
    """The windows a backtest from shards scores: ``evaluation.backtest.n_windows``, else
    the default count (a ConfigError for refits per cut-off)."""
    if cfg.evaluation.backtest.refit is not False:
        raise ConfigError("a backtest from shards fits each model once (refit: false); "
                          f"evaluation.backtest.refit is {cfg.evaluation.backtest.refit!r}",
                          hint="set evaluation.backtest.refit: false, or backtest from one "
                          "file (execution.runner: serial)")
    return cfg.lengths.n_windows


def backtest_from_shards(cfg: PipelineConfig, inputs: RunInputs, steps: Steps
                         ) -> JobResult:
    """The ``backtest`` job from shards: prepare them, then in a parent run fit every
    model once on their stream and score each shard's windows in its worker (see the
    module's docstring); the per-model runs as ``backtest`` logs them."""
    from deepcast.pipelines.backtest import log_backtest, summary_notes, summary_records

    check_shard_training(cfg, inputs)
    windows = backtest_windows(cfg)
    cfg = with_windows(cfg, windows).without_checkpoints()
    t0 = time.perf_counter()
    with steps.pool(cfg) as pool:
        shards = prepare_shards(cfg, inputs, pool, steps, windows)
        try:
            cfg = shards.cfg
            tracker = store.open_tracker(cfg)
            tags = {**run_tags(cfg, "backtest", inputs, shards.sha256),
                    tag.SHARDS: str(shards.n_shards)}
            with store.parent_run(tracker, cfg, "backtest", tags) as parent_id:
                scores = _backtest(shards, steps, windows, t0)
                log_backtest(scores, cfg, tracker)
                store.log_metrics(tracker, {"backtest_seconds": scores.seconds})
        finally:
            shards.release()
    bt = cfg.evaluation.backtest
    return JobResult(
        pipeline=cfg.name, parent_run_id=parent_id, metric=cfg.evaluation.metric,
        n_windows=windows, step=cfg.lengths.step, refit=bt.refit,
        table=summary_records(scores), seconds=round(scores.seconds, 2),
        n_series=shards.n_series, dropped_series=shards.report.dropped_series,
        tracking_uri=store.store_uri(tracker), skipped=scores.skipped,
        notes=[*shards.report.warnings, *summary_notes(scores)])


def _backtest(shards: PreparedShards, steps: Steps, windows: int, t0: float
              ) -> BacktestResult:
    """Fit every model (and seasonal naive) once, score its windows shard by shard."""
    cfg = shards.cfg
    entries = cfg.scored_models
    tables, rows = [], []
    for entry in entries:
        t1 = time.perf_counter()
        predictor, _, _ = steps.run(f"fit-{entry.label}", shards.fit, entry)
        got = steps.run(f"backtest-{entry.label}", shards.pool.run, score_part_windows,
                        shards.handles, bundle_bytes(predictor))
        table, means = _merged([g for g in got if g is not None])
        table.insert(0, "model", entry.label)
        tables.append(table)
        rows.append({"model": entry.label, "type": entry.type, **means,
                     "fits": int(predictor.forecaster.trainable),
                     "seconds": round(time.perf_counter() - t1, 2)})
        log.info("%s: backtest %s = %.4f", entry.label, cfg.evaluation.metric,
                 means[cfg.evaluation.metric])
    return _result(cfg, windows, tables, rows, time.perf_counter() - t0, shards)


def _merged(scores: list[WindowScores]) -> tuple[pd.DataFrame, dict[str, float]]:
    """The panel's table and means from its shards' (the means of ``score_windows``: over
    every series x window with a finite value)."""
    from deepcast.features.schema import ID
    from deepcast.forecasting.metrics import wql_of

    table = pd.concat([s.table for s in scores], ignore_index=True)
    means = {}
    for c in table.columns:
        if c not in ("window", ID):
            v = table[c].to_numpy(np.float64)
            means[c] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    sums = [s.wql_parts for s in scores if s.wql_parts is not None]
    if sums:
        means["wql"] = wql_of(np.sum([s[0] for s in sums], axis=0), sum(s[1] for s in sums))
    return table, means


def _result(cfg: PipelineConfig, windows: int, tables: list[pd.DataFrame],
            rows: list[dict[str, Any]], seconds: float, shards: PreparedShards
            ) -> BacktestResult:
    """The backtest's result (no forecasts, no per-series cut-offs: they stay in the
    shards), with what it did not do in its notes."""
    from deepcast.pipelines.backtest import with_skill

    notes = [f"backtested from {shards.n_shards} shards ({shards.n_series} series, "
             f"{windows} windows, one fit per model on "
             f"{cfg.training.windows_per_epoch} sampled windows per epoch)"]
    notes += [f"ensemble {e.name}: not backtested from shards" for e in cfg.ensemble]
    if cfg.evaluation.conformal:
        notes.append("conformal coverage is not measured from shards (each window's "
                     "bands are calibrated on every series' earlier residuals at once)")
    summary = with_skill(pd.DataFrame(rows), cfg.evaluation.metric)
    return BacktestResult(cfg.evaluation.metric, np.zeros((0, windows), dtype=np.int64),
                          np.zeros((0, windows)), {}, pd.concat(tables, ignore_index=True),
                          summary, seconds, {}, cfg.calibration_windows, notes)
