"""A hierarchy's backtest scores the forecasts it serves: every model's window forecasts
reconciled as ``train`` reconciles them (``hierarchy.method``), before they are scored.

The structural methods (``bottom_up``, ``top_down``, ``min_trace_ols``,
``min_trace_wls_struct``) need no data: one reconciliation serves every window.
``min_trace_shrink`` estimates the covariance of each model's out-of-sample errors; in a
backtest, window ``j`` is reconciled with the covariance of the model's base-forecast
errors on the windows before its cut-off only (the steps already observed), so no window is
reconciled with its own errors; the first window, with none before it, falls back to
``min_trace_wls_struct`` and the backtest's notes say so.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property

import numpy as np
import pandas as pd

from deepcast.features.hierarchy import structure
from deepcast.features.schema import DS, ID
from deepcast.features.windows import Panel, panel_from_frame
from deepcast.forecasting.reconcile import Reconciler, fit_reconciler
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.modelling import nonnegative


class BacktestReconciler:
    """Reconciles every model's window forecasts of one backtest of ``df`` (the frame with
    its aggregate levels) under ``cfg.hierarchy``."""

    def __init__(self, df: pd.DataFrame, cfg: PipelineConfig, panel: Panel | None = None
                 ) -> None:
        assert cfg.hierarchy is not None
        self.method, self.spec = cfg.hierarchy.method, cfg.hierarchy.spec()
        self.shape = structure(df, self.spec)
        # floored as the served model is: judged on the history before the first cut-off
        self.floor = nonnegative(cfg.data.nonnegative,
                                 panel_from_frame(df) if panel is None else panel,
                                 cfg.lengths.backtest_span)
        self._fell: dict[str, tuple[int, int]] = {}  # model -> (windows fallen back, of)

    @cached_property
    def _structural(self) -> Reconciler:
        """The reconciler of a method without residuals: the same for every model."""
        return self._fit(None)

    def __call__(self, label: str, fc: pd.DataFrame) -> pd.DataFrame:
        """``fc`` (series x window x step, sorted) with coherent forecasts."""
        if self.method != "min_trace_shrink":
            return self._structural.apply(fc, key=("window", DS))
        parts, fell = [], 0
        for _, part in fc.groupby("window", sort=True):
            rec = self._fit(self._errors_before(fc, part[DS].min()))
            fell += bool(rec.note)
            parts.append(rec.apply(part, key=(DS,)))
        if fell:
            self._fell[label] = (fell, fc["window"].nunique())
        out = pd.concat(parts)
        return out.loc[fc.index]  # the input's row order: series, window, step

    @property
    def notes(self) -> list[str]:
        """One line per count of windows reconciled with the fallback, naming the models."""
        by: dict[tuple[int, int], list[str]] = {}
        for label, counts in self._fell.items():
            by.setdefault(counts, []).append(label)
        return [f"{fell} of {k} backtest windows (the first has none) had too few earlier "
                "errors for min_trace_shrink's covariance and were reconciled with "
                f"min_trace_wls_struct: {', '.join(labels)}"
                for (fell, k), labels in by.items()]

    def _fit(self, residuals: np.ndarray | None) -> Reconciler:
        rec = fit_reconciler(self.method, self.shape, residuals)
        return replace(rec, spec=self.spec, floor=self.floor)

    def _errors_before(self, fc: pd.DataFrame, first_ds) -> np.ndarray | None:
        """Base-forecast errors (series in S order, steps) observed before ``first_ds``
        (the forecast dates before this window's first one); None when there are none."""
        seen = fc[fc[DS] < first_ds]
        if seen.empty:
            return None
        wide = seen.assign(_e=seen["y"] - seen["yhat"]).pivot_table(
            index=ID, columns=["window", "h"], values="_e", aggfunc="first", dropna=False)
        return wide.reindex(self.shape.ids).to_numpy(np.float64)


__all__ = ["BacktestReconciler"]
