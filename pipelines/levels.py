"""A pipeline's hierarchy (``hierarchy:``): the aggregate series added to the validated
frame, each model's reconciliation fit on its backtest residuals, and scores per level."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from deepcast.features.hierarchy import LEVEL, aggregate, structure
from deepcast.features.schema import ID
from deepcast.forecasting.crossval import SpanBacktest
from deepcast.forecasting.predictor import Predictor
from deepcast.forecasting.reconcile import Reconciler, fit_reconciler
from deepcast.pipelines.config import PipelineConfig

log = logging.getLogger("deepcast")


def with_levels(clean: pd.DataFrame, cfg: PipelineConfig) -> pd.DataFrame:
    """The validated bottom series with every aggregate level added (no hierarchy: as
    is)."""
    if cfg.hierarchy is None:
        return clean
    out = aggregate(clean, cfg.hierarchy.spec())
    out.attrs.update(clean.attrs)
    return out


def attach_reconciler(predictor: Predictor, df: pd.DataFrame, cfg: PipelineConfig,
                      backtest: SpanBacktest | None) -> SpanBacktest | None:
    """Give ``predictor`` the pipeline's reconciliation, fit for this model (MinT's
    covariance on its backtest residuals); its note, if any, joins the model's notes.
    Returns the backtest with its windows' forecasts reconciled the same way, so the
    choice and the bands see coherent forecasts there too, as on the holdout."""
    if cfg.hierarchy is None:
        return backtest
    spec = cfg.hierarchy.spec()
    shape = structure(df, spec)
    residuals = None if backtest is None else backtest.residual_matrix(shape.ids)
    rec = fit_reconciler(cfg.hierarchy.method, shape, residuals)
    predictor.reconciler = replace(rec, spec=spec, floor=predictor.nonnegative)
    if rec.note:
        log.warning("%s: %s", predictor.name, rec.note)
        predictor.conformal_notes = [*predictor.conformal_notes, rec.note]
    return reconciled_windows(predictor.reconciler, backtest)


def reconciled_windows(rec: Reconciler, backtest: SpanBacktest | None
                       ) -> SpanBacktest | None:
    """``backtest`` with each window's forecasts reconciled by ``rec``; as it is when some
    series of the hierarchy took no part (too short for its first cut-off)."""
    if backtest is None or backtest.ids is None:
        return backtest
    where = {str(uid): i for i, uid in enumerate(backtest.ids)}
    if any(str(uid) not in where for uid in rec.structure.ids):
        return backtest
    order = np.array([where[str(uid)] for uid in rec.structure.ids])
    h = backtest.f.shape[1]
    f = backtest.f.reshape(backtest.n_series, backtest.n_windows, h).copy()
    for w in range(backtest.n_windows):
        f[order, w, :] = rec.reconcile_where_whole(f[order, w, :])
    return replace(backtest, f=f.reshape(-1, h))


def level_scores(per_series: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame | None:
    """Mean holdout metrics per level (None without a hierarchy): whether the model is
    good at the total, the middle or the bottom."""
    if LEVEL not in df.columns:
        return None
    level = df.drop_duplicates(ID).set_index(ID)[LEVEL]
    scored = per_series.assign(**{LEVEL: per_series[ID].map(level)})
    numeric = [c for c in scored.columns if c not in (ID, LEVEL)
               and pd.api.types.is_numeric_dtype(scored[c])]
    out = scored.groupby(LEVEL, sort=False)[numeric].mean().reset_index()
    out.insert(1, "series", scored.groupby(LEVEL, sort=False).size().to_numpy())
    return out.replace([np.inf, -np.inf], np.nan)
