"""Ensembles: a forecaster made of fitted member forecasters of the same pipeline.

Members share the pipeline's scaler and covariate encoder, so the ensemble combines their
forecasts in the scaled space, window by window:

- ``mean`` / ``median``: the average / median of the members;
- ``weighted``: weights from the members' out-of-sample backtest errors (1 / MASE, summing
  to one);
- ``stacking``: per horizon step, an affine combination (weights summing to one, ridge-shrunk
  towards equal weights) fit on out-of-sample backtest forecasts only, never on in-sample
  fits;
- ``greedy``: Caruana et al. (2004) ensemble selection with replacement: members are added
  one at a time, each time the one that most lowers the backtest MASE of the running mean;
  the weights are how often each was picked (AutoGluon-TimeSeries' default ensemble);
- ``bagging``: the mean of one configuration trained with several seeds.

Weights that sum to one make the combination commute with per-series affine scaling, so
weights fit on normalised backtest forecasts apply unchanged in the scaled space. An
ensemble is saved with its members (each in its own folder, Keras members as ``.keras``
loaded with ``safe_mode=True``) and served through the same pyfunc contract as any model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deepcast.forecasting.base import FamilyOptions, Forecaster
from deepcast.forecasting.registry import load_forecaster, register_family

METHODS = ("mean", "median", "weighted", "stacking", "greedy", "bagging")
LEARNED = ("weighted", "stacking", "greedy")  # methods whose weights a backtest fits
GREEDY_ROUNDS = 100  # picks of the greedy selection (AutoGluon's ensemble_size)
MEMBERS_DIR = "members"


class EnsembleOptions(FamilyOptions):
    """What the saved ensemble needs to combine its members."""

    method: str = "mean"
    members: list[str] = []
    weights: list[list[float]] | None = None  # (horizon, n_members), rows sum to one


@register_family("ensemble")
class EnsembleForecaster(Forecaster):
    """Combination of member forecasters (declared under ``ensemble:`` in the YAML)."""

    Options = EnsembleOptions
    yaml_entry: ClassVar[bool] = False  # declared under `ensemble:`, not `models:`
    members: list[Forecaster]

    def __post_init__(self) -> None:
        if not hasattr(self, "members"):
            self.members = []
        super().__post_init__()

    @property
    def covariates(self) -> frozenset[str]:  # type: ignore[override]
        out: frozenset[str] = frozenset()
        for m in self.members:
            out |= m.covariates
        return out

    def with_members(self, members: list[Forecaster]) -> EnsembleForecaster:
        self.members = list(members)
        self.options = {**self.options, "members": [m.name for m in members]}
        return self

    def member_forecasts(self, x: np.ndarray, covariates: dict[str, np.ndarray] | None = None
                         ) -> np.ndarray:
        """(n, horizon, n_members) point forecasts (the median of quantile members)."""
        out = []
        for m in self.members:
            yhat = m.predict(*_tail(x, covariates, m.spec.lookback))
            if yhat.ndim == 3:
                yhat = yhat[:, :, list(m.quantiles).index(0.5)]
            out.append(yhat)
        return np.stack(out, axis=-1)

    def predict(self, x: np.ndarray, covariates: dict[str, np.ndarray] | None = None
                ) -> np.ndarray:
        f = self.member_forecasts(x, covariates)
        method = self.options["method"]
        if method == "median":
            yhat = np.median(f, axis=-1)
        elif self.options.get("weights"):
            w = np.asarray(self.options["weights"], dtype=np.float64)  # (horizon, members)
            yhat = np.einsum("nhm,hm->nh", f, w)
        else:  # mean, bagging
            yhat = f.mean(axis=-1)
        return self.check_output(x, yhat)

    def notes(self) -> list[str]:
        return [f"{m.name}: {note}" for m in self.members for note in m.notes()]

    def _save_weights(self, path: Path) -> None:
        for i, m in enumerate(self.members):
            m.save(path / MEMBERS_DIR / f"{i:02d}")

    def _load_weights(self, path: Path) -> None:
        folders = sorted((path / MEMBERS_DIR).iterdir())
        self.members = [load_forecaster(p) for p in folders]


def _tail(x: np.ndarray, covariates: dict[str, np.ndarray] | None, lookback: int
          ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """The inputs of a member with a shorter window: the last ``lookback`` steps of the
    history inputs (the ensemble's window is its longest member's)."""
    if x.shape[1] == lookback:
        return x, covariates
    cut = x.shape[1] - lookback
    out = None if covariates is None else {
        k: v[:, cut:] if k in ("past", "future") else v for k, v in covariates.items()}
    return x[:, cut:], out


def inverse_error_weights(errors: np.ndarray, horizon: int) -> list[list[float]]:
    """Weights 1 / error (non-finite or zero errors get no weight), one row per step."""
    e = np.asarray(errors, dtype=np.float64)
    inv = np.where(np.isfinite(e) & (e > 0), 1.0 / np.where(e > 0, e, 1.0), 0.0)
    if inv.sum() == 0:
        inv = np.ones_like(inv)
    w = inv / inv.sum()
    return np.repeat(w[None, :], horizon, axis=0).tolist()


def stacking_weights(y: np.ndarray, f: np.ndarray, ridge: float = 1e-3) -> list[list[float]]:
    """Per horizon step, ``w = argmin |y - F w|^2 + ridge * n * |w - 1/M|^2`` subject to
    ``sum(w) = 1``: an affine combination of the members fit on out-of-sample forecasts.
    ``y`` (n, horizon) and ``f`` (n, horizon, M), both normalised per series."""
    n, horizon, m = f.shape
    prior = np.full(m, 1.0 / m)
    rows = []
    for h in range(horizon):
        ok = np.isfinite(y[:, h]) & np.isfinite(f[:, h]).all(axis=1)
        F, t = f[ok, h], y[ok, h]
        lam = ridge * max(len(t), 1)
        # KKT system of the equality-constrained ridge problem
        A = np.zeros((m + 1, m + 1))
        A[:m, :m] = F.T @ F + lam * np.eye(m)
        A[:m, m] = A[m, :m] = 1.0
        b = np.concatenate([F.T @ t + lam * prior, [1.0]])
        try:
            w = np.linalg.solve(A, b)[:m]
        except np.linalg.LinAlgError:
            w = prior
        rows.append(w.tolist())
    return rows


def greedy_weights(y: np.ndarray, f: np.ndarray, rounds: int = GREEDY_ROUNDS
                   ) -> list[float]:
    """Caruana ensemble selection with replacement on out-of-sample forecasts: ``rounds``
    times, add the member whose addition gives the running mean the lowest mean absolute
    error (ties: the earlier member); weights = picks / rounds. ``y`` (n, horizon) and
    ``f`` (n, horizon, M), normalised per series; points where anything is missing are
    left out. As AutoGluon does, the picks are cut back to the best running mean seen."""
    m = f.shape[-1]
    ok = np.isfinite(y) & np.isfinite(f).all(axis=-1)
    if not ok.any():
        return [1.0 / m] * m
    t, F = y[ok], f[ok]  # (p,), (p, M)
    counts = np.zeros(m, dtype=np.int64)
    total = np.zeros_like(t)
    best, best_counts = np.inf, counts.copy()
    for k in range(1, rounds + 1):
        errors = np.abs(t[:, None] - (total[:, None] + F) / k).mean(axis=0)
        pick = int(np.argmin(errors))
        counts[pick] += 1
        total += F[:, pick]
        if errors[pick] < best - 1e-12:
            best, best_counts = errors[pick], counts.copy()
    return (best_counts / best_counts.sum()).tolist()


def ensemble_weights(method: str, y: np.ndarray, f: np.ndarray, scale: np.ndarray
                     ) -> list[list[float]]:
    """Weights (horizon, members) of a ``weighted`` (1 / MASE per member), ``stacking``
    or ``greedy`` ensemble from out-of-sample forecasts: truth ``y`` (n, horizon), member
    forecasts ``f`` (n, horizon, M) and each row's seasonal naive scale (n,), NaN where
    undefined."""
    if method == "greedy":
        w = greedy_weights(y / scale[:, None], f / scale[:, None, None])
        return [list(w) for _ in range(y.shape[1])]
    if method == "weighted":
        errors = np.nanmean(np.abs(y[..., None] - f) / scale[:, None, None], axis=(0, 1))
        return inverse_error_weights(errors, y.shape[1])
    if method == "stacking":
        return stacking_weights(y / scale[:, None], f / scale[:, None, None])
    raise ValueError(f"ensemble method {method!r} learns no weights; expected one of "
                     f"{LEARNED}")


def build_ensemble(name: str, method: str, members: list[Forecaster],
                   weights: list[list[float]] | None = None) -> EnsembleForecaster:
    """An ensemble of fitted members sharing one window spec."""
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; expected one of {METHODS}")
    if not members:
        raise ValueError("an ensemble needs members")
    spec = max((m.spec for m in members), key=lambda s: s.lookback)  # local: whole series
    if any(m.spec.horizon != spec.horizon for m in members):
        raise ValueError("ensemble members must share the horizon")
    options: dict[str, Any] = {"method": method, "weights": weights}
    return EnsembleForecaster(name=name, spec=spec, options=options).with_members(members)
