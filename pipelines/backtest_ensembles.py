"""The ``ensemble:`` entries in a backtest, scored on the same cut-offs as the models.

An ensemble's backtest forecast combines its members' forecasts of the same cut-offs, so
its members are refit exactly when the refit schedule refits the models:

- ``mean`` / ``median``: the members' backtest forecasts, averaged per point;
- ``bagging``: its model fit with ``n_members`` seeds at every refit cut-off (fits of
  their own, in the same fan-out as the models'), averaged;
- ``weighted`` / ``stacking`` / ``greedy``: at every refit cut-off, weights learned from
  an inner backtest of the members on the history before that cut-off only (as ``train`` learns
  them before its holdout), applied to the members' forecasts of that refit group.

Weights sum to one and the scaling is per-series affine, so combining the forecasts in
the data's units gives what the served ensemble gives. An ensemble whose inner backtest
finds no series long enough is skipped, with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.schema import DS, ID
from deepcast.forecasting.ensemble import ensemble_weights
from deepcast.pipelines.backtest_fits import (
    BacktestJob,
    WindowForecasts,
    history_before,
    joined,
    member_forecasts,
)
from deepcast.pipelines.config import EnsembleConfig, PipelineConfig
from deepcast.pipelines.modelling import Mapper

KEYS = [ID, "window", "cutoff", DS, "h", "y"]


@dataclass(frozen=True)
class BacktestPlan:
    """What every fit of one backtest shares: the frame, the config (checkpoints off), the
    cut-offs (n_series, n_windows), the refit groups of windows and the fan-out."""

    df: pd.DataFrame
    cfg: PipelineConfig
    cuts: np.ndarray
    groups: list[list[int]]
    mapper: Mapper | None = None


@dataclass(frozen=True)
class EnsembleWindows:
    """An ensemble's backtest forecasts (None when skipped, ``skipped`` says why), the
    trainable fits they rest on and the seconds they took."""

    forecasts: pd.DataFrame | None
    fits: int = 0
    seconds: float = 0.0
    skipped: str = ""


def bagging_jobs(spec: EnsembleConfig, plan: BacktestPlan) -> list[BacktestJob]:
    """The fits of a bagging ensemble's members (none for other methods): its model with
    seed ``training.seed + i`` as ``NAME_i`` (the names ``train`` gives them), at every
    refit cut-off."""
    if spec.method != "bagging":
        return []
    cfg, jobs = plan.cfg, []
    for i in range(spec.n_members):
        entry = spec.model.model_copy(update={"name": f"{spec.name}_{i}"})
        seeded = cfg.model_copy(update={"training": cfg.training.model_copy(
            update={"seed": cfg.training.seed + i})})
        jobs += [BacktestJob(entry, tuple(w), plan.df, seeded, plan.cuts)
                 for w in plan.groups]
    return jobs


def backtest_ensemble(spec: EnsembleConfig, fits: dict[str, list[WindowForecasts]],
                      plan: BacktestPlan) -> EnsembleWindows:
    """The backtest forecasts of ``spec`` from its members' fits (``fits`` by label: the
    models' and the bagged members')."""
    t0 = time.perf_counter()
    names = (spec.members if spec.method != "bagging"
             else [f"{spec.name}_{i}" for i in range(spec.n_members)])
    parts = [fits[name] for name in names]
    members = [joined(p) for p in parts]
    f = np.stack([m["yhat"].to_numpy(np.float64) for m in members], axis=-1)
    base = members[0][KEYS].copy()
    n_fits = sum(p.trainable for member in parts for p in member)
    if spec.method == "median":
        yhat = np.median(f, axis=-1)
    elif spec.method in ("mean", "bagging"):
        yhat = f.mean(axis=-1)
    else:
        try:
            yhat, inner = _weighted(spec, f, base, plan)
        except DataError as exc:
            return EnsembleWindows(None, skipped=f"{spec.method} weights need an inner "
                                   f"backtest before each refit cut-off: {exc}")
        n_fits += inner
    seconds = time.perf_counter() - t0 + sum(p.seconds for m in parts for p in m)
    return EnsembleWindows(base.assign(yhat=yhat), n_fits, seconds)


def _weighted(spec: EnsembleConfig, f: np.ndarray, base: pd.DataFrame, plan: BacktestPlan
              ) -> tuple[np.ndarray, int]:
    """(combined forecasts, inner trainable fits): per refit group, weights from the
    members' backtest on the history before the group's first cut-off."""
    cfg, bt = plan.cfg, plan.cfg.evaluation.backtest
    entries: dict[str, Any] = {m.label: m for m in cfg.models}
    members = [entries[m] for m in spec.members]
    window, step = base["window"].to_numpy(), base["h"].to_numpy() - 1
    yhat, fits = np.full(len(base), np.nan), 0
    for group in plan.groups:
        train = history_before(plan.df, plan.cuts[:, group[0]],
                               bt.train_size if bt.window == "sliding" else None)
        inner = member_forecasts(train, members, cfg, plan.mapper)
        w = np.asarray(ensemble_weights(spec.method, inner.y, inner.f, inner.scale))
        rows = np.isin(window, group)
        yhat[rows] = np.einsum("rm,rm->r", f[rows], w[step[rows]])
        fits += inner.fits
    return yhat, fits


__all__ = ["BacktestPlan", "EnsembleWindows", "backtest_ensemble", "bagging_jobs"]
