"""Coherent forecasts: reconcile every level of a hierarchy so the aggregates equal the
sums of their parts.

The reconciliation methods are hierarchicalforecast's (Nixtla), called on numpy arrays:
``bottom_up``; ``top_down`` (Gross & Sohl's forecast proportions, strictly nested
hierarchies only); ``min_trace_ols``, ``min_trace_wls_struct`` and ``min_trace_shrink``
(Wickramasuriya, Athanasopoulos & Hyndman 2019; the shrunk covariance is estimated on the
model's out-of-sample backtest residuals). The linear methods are one projection ``P``
(n_bottom, n_series), fit at train time and saved with the model as JSON: the reconciled
forecast is ``S @ P @ yhat`` per time step, with no library call when serving.
Forecast proportions depend on each forecast, so ``top_down`` calls the library at each
forecast.

What is reconciled: the point forecast ``yhat``. Quantile columns and conformal bands are
shifted by the same amount as their series' ``yhat`` (they stay centred on the coherent
forecast; their widths are each series' own, so bands are not themselves coherent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.hierarchy import LEVEL, HierarchySpec, Structure, aggregate
from deepcast.features.schema import DS, ID, ColumnSpec, Y

METHODS = ("bottom_up", "top_down", "min_trace_ols", "min_trace_wls_struct",
           "min_trace_shrink")


@dataclass
class Reconciler:
    """A fitted reconciliation of one hierarchy: its structure, method and projection
    (None for ``top_down``)."""

    method: str
    structure: Structure
    P: np.ndarray | None = None
    note: str = ""  # why another method was used than the one asked for
    spec: HierarchySpec | None = None  # how to build the levels from bottom series
    #: floor the reconciled bottom forecasts at 0 (data.nonnegative) and add them up
    #: again: coherent and never below zero
    floor: bool = False

    def reconcile(self, yhat: np.ndarray) -> np.ndarray:
        """Coherent forecasts of base forecasts ``yhat`` (n_series in S order, T)."""
        S = self.structure.S
        if self.P is not None:
            bottom = self.P @ yhat
        else:
            from hierarchicalforecast.methods import TopDown

            out = TopDown("forecast_proportions").fit_predict(S=S, y_hat=yhat,
                                                              tags=self.structure.tags())
            bottom = np.asarray(out["mean"])[-self.structure.n_bottom:]
        return S @ (np.maximum(bottom, 0.0) if self.floor else bottom)

    def reconcile_where_whole(self, yhat: np.ndarray) -> np.ndarray:
        """:meth:`reconcile` of the steps (columns) every series has a forecast for; a
        step some series lacks (NaN) stays as it is."""
        coherent = self.reconcile(np.nan_to_num(yhat))
        return np.where(np.isnan(yhat).any(axis=0, keepdims=True), yhat, coherent)

    def with_levels(self, frame: pd.DataFrame, columns: ColumnSpec) -> pd.DataFrame:
        """``frame`` (the served model's input, in the training column names) with the
        aggregate series built from its bottom series, unless they are there already."""
        if LEVEL in frame.columns or self.spec is None:
            return frame
        names = {columns.id_col: ID, columns.time_col: DS, columns.target_col: Y}
        out = aggregate(frame.rename(columns=names), self.spec)
        return out.rename(columns={v: k for k, v in names.items()})

    def labelled(self, fc: pd.DataFrame) -> pd.DataFrame:
        """``fc`` with each series' ``level``."""
        level = dict(zip(self.structure.ids, self.structure.levels, strict=True))
        return fc.assign(**{LEVEL: fc[ID].map(level).to_numpy()})

    def apply(self, fc: pd.DataFrame, key: tuple[str, ...] = (DS,)) -> pd.DataFrame:
        """``fc`` (``unique_id``, ``key`` columns, ``yhat`` ...) with ``yhat`` reconciled
        per ``key`` (a time step, or a backtest window and step) and the other value
        columns shifted by the same amount. DataError when a series of the hierarchy is
        missing."""
        ids = self.structure.ids
        missing = set(ids) - set(fc[ID].unique())
        if missing:
            raise DataError(f"hierarchy: {len(missing)} series of the hierarchy are not in "
                            f"the forecast ({sorted(missing)[:5]})",
                            hint="pass the history of every bottom series")
        cols = list(key)
        wide = fc.pivot_table(index=ID, columns=cols, values="yhat", aggfunc="first",
                              dropna=False).reindex(ids)
        base = wide.to_numpy(np.float64)
        coherent = self.reconcile_where_whole(base)
        delta = pd.DataFrame(coherent - base, index=wide.index, columns=wide.columns)
        long = delta.stack(list(range(len(cols))), future_stack=True).rename("_delta")
        merged = fc.join(long, on=[ID, *cols])
        shift = merged["_delta"].fillna(0.0).to_numpy()
        out = fc.copy()
        for c in [c for c in fc.columns if c.startswith("yhat")]:
            out[c] = fc[c].to_numpy(np.float64) + shift
        return out

    def to_dict(self) -> dict:
        spec = None if self.spec is None else {
            "columns": list(self.spec.columns), "separator": self.spec.separator,
            "levels": [list(lv) for lv in self.spec.levels], "in_id": self.spec.in_id}
        return {"method": self.method, "structure": self.structure.to_dict(),
                "P": None if self.P is None else self.P.tolist(), "note": self.note,
                "spec": spec, "floor": self.floor}

    @classmethod
    def from_dict(cls, d: dict) -> Reconciler:
        P = None if d.get("P") is None else np.asarray(d["P"], dtype=np.float64)
        s = d.get("spec")
        spec = None if s is None else HierarchySpec(
            tuple(s["columns"]), s["separator"], tuple(tuple(lv) for lv in s["levels"]),
            bool(s["in_id"]))
        return cls(d["method"], Structure.from_dict(d["structure"]), P, d.get("note", ""),
                   spec, bool(d.get("floor", False)))


def fit_reconciler(method: str, structure: Structure,
                   residuals: np.ndarray | None = None) -> Reconciler:
    """The projection of ``method`` for ``structure``; ``residuals`` (n_series in S order,
    T) are out-of-sample base forecast errors, needed by ``min_trace_shrink`` (without
    enough of them -- a series without any, or fewer than 2 steps -- it falls back to
    ``min_trace_wls_struct``, and ``note`` says so). Missing residuals (NaN) are
    left out of the covariance pairwise, as the library does."""
    from hierarchicalforecast.methods import BottomUp, MinTrace

    S = structure.S
    dummy = np.zeros((S.shape[0], 1))
    if method == "top_down":
        return Reconciler(method, structure)
    if method == "bottom_up":
        return Reconciler(method, structure, BottomUp().fit(S=S, y_hat=dummy).P)
    if method == "min_trace_shrink":
        usable = residuals is not None and residuals.shape[1] >= 2 and \
            np.isfinite(residuals).any(axis=1).all()
        if usable:
            fitted = MinTrace("mint_shrink").fit(
                S=S, y_hat=dummy, y_insample=residuals,
                y_hat_insample=np.zeros_like(residuals))
            return Reconciler(method, structure, np.asarray(fitted.P))
        note = ("min_trace_shrink needs out-of-sample residuals of every series (the "
                "selection backtest): reconciled with min_trace_wls_struct instead")
        wls = MinTrace("wls_struct").fit(S=S, y_hat=dummy).P
        return Reconciler("min_trace_wls_struct", structure, np.asarray(wls), note)
    name = {"min_trace_ols": "ols", "min_trace_wls_struct": "wls_struct"}.get(method)
    if name is None:
        raise ValueError(f"unknown reconciliation {method!r}; expected one of {METHODS}")
    return Reconciler(method, structure, np.asarray(MinTrace(name).fit(S=S, y_hat=dummy).P))
