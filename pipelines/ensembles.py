"""Ensembles of a ``train``: built from the run's trained models (or, for bagging, from
members trained here) on the run's prepared data; the weights of ``weighted`` and
``stacking`` come from a backtest of the members on the training span only."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from deepcast.forecasting.ensemble import build_ensemble, ensemble_weights
from deepcast.forecasting.evaluate import split_holdout
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines.backtest_fits import member_forecasts
from deepcast.pipelines.config import EnsembleConfig, PipelineConfig
from deepcast.pipelines.modelling import (
    ModelResult,
    PreparedData,
    checkpoint_dir,
    fit_model,
    training_settings,
)


def fit_ensemble(spec: EnsembleConfig, results: list[ModelResult], prep: PreparedData,
                 cfg: PipelineConfig) -> tuple[Predictor, dict[str, list[float]], float]:
    """Build one ``ensemble:`` entry from the trained models (or, for bagging, train its
    members); weights come from a backtest of the members on the training span only."""
    t0 = time.perf_counter()
    weights = None
    if spec.method == "bagging":
        members = _bagged_members(spec, prep, cfg)
    else:
        by_name = {r.name: r for r in results}
        members = [by_name[m].predictor.forecaster for m in spec.members]
        if spec.method in ("weighted", "stacking"):
            weights = _member_weights(spec, prep, cfg)
    ensemble = build_ensemble(spec.name, spec.method, members, weights)
    return prep.predictor(ensemble), {}, time.perf_counter() - t0


def _bagged_members(spec: EnsembleConfig, prep: PreparedData, cfg: PipelineConfig) -> list[Any]:
    """``spec.n_members`` fits of ``spec.model``, seeds ``training.seed + i``."""
    settings, members = training_settings(cfg), []
    for i in range(spec.n_members):
        entry = spec.model.model_copy(update={"name": f"{spec.name}_{i}"})
        predictor, _, _ = fit_model(entry, prep, replace(settings, seed=settings.seed + i),
                                    checkpoint=checkpoint_dir(cfg, entry.label))
        members.append(predictor.forecaster)
    return members


def _member_weights(spec: EnsembleConfig, prep: PreparedData, cfg: PipelineConfig
                    ) -> list[list[float]]:
    """Per-step inverse-MASE weights (``weighted``) or stacking weights (``stacking``) of
    the members, from their backtest on the training span."""
    entries = {m.label: m for m in cfg.models}
    y, f, scale = member_backtest([entries[m] for m in spec.members], prep, cfg)
    return ensemble_weights(spec.method, y, f, scale)


def member_backtest(entries: list[Any], prep: PreparedData, cfg: PipelineConfig
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-sample forecasts of ``entries`` on backtest cut-offs inside the training span
    (the holdout is never seen): (y (n, h), member forecasts (n, h, M), scale (n,)), one row
    per series x cut-off; ``scale`` is the series' seasonal naive MAE before the cut-off.
    One fit per member (``refit: false``); series too short for the first cut-off take no
    part in fitting the weights."""
    train, _ = split_holdout(prep.df, prep.require_holdout().size)
    out = member_forecasts(train, entries, cfg)
    return out.y, out.f, out.scale
