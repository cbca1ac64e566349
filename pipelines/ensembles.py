"""Ensembles of a ``train``: built from the run's trained models (or, for bagging, from
members trained here) on the run's prepared data; the weights of ``weighted``,
``stacking`` and ``greedy`` come from a backtest of the members on the training span only."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from deepcast.forecasting.crossval import member_arrays
from deepcast.forecasting.ensemble import LEARNED, build_ensemble, ensemble_weights
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

MemberBacktests = dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]]
"""The members' backtests of one train, by member names: ensembles over the same members
(a ``weighted`` and a ``greedy`` one) share one backtest."""


def fit_ensemble(spec: EnsembleConfig, results: list[ModelResult], prep: PreparedData,
                 cfg: PipelineConfig, memo: MemberBacktests | None = None
                 ) -> tuple[Predictor, dict[str, list[float]], float]:
    """Build one ``ensemble:`` entry from the trained models (or, for bagging, train its
    members); weights come from a backtest of the members on the training span only
    (kept in ``memo`` for the run's other ensembles of the same members)."""
    t0 = time.perf_counter()
    weights = None
    if spec.method == "bagging":
        members = _bagged_members(spec, prep, cfg)
    else:
        by_name = {r.name: r for r in results}
        members = [by_name[m].predictor.forecaster for m in spec.members]
        if spec.method in LEARNED:
            weights = _member_weights(spec, by_name, prep, cfg, {} if memo is None else memo)
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


def _member_weights(spec: EnsembleConfig, by_name: dict[str, ModelResult],
                    prep: PreparedData, cfg: PipelineConfig, memo: MemberBacktests
                    ) -> list[list[float]]:
    """Per-step inverse-MASE (``weighted``), stacking (``stacking``) or greedy selection
    (``greedy``) weights of the members, from their backtest on the training span (the
    selection backtest the members already ran, or one run here)."""
    entries, key = {m.label: m for m in cfg.models}, tuple(spec.members)
    if key not in memo:
        backtests = [by_name[m].backtest for m in spec.members]
        memo[key] = member_arrays(backtests) if all(b is not None for b in backtests) \
            else member_backtest([entries[m] for m in spec.members], prep, cfg)
    return ensemble_weights(spec.method, *memo[key])


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
