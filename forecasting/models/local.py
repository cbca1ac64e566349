"""Local (per-series) statistical families: each forecast fits one model per series on
that series' own history, in the units it was observed in (after a target transform, before
scaling: multiplicative models need the positive level, not a standardised one).

They are fitted at forecast time, as statsforecast's ``forecast`` does: a window of up to
``max_history`` points (the longest series of the training data, by default all of it)
reaches the model, and nothing but the options is saved.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from deepcast.forecasting import statistical
from deepcast.forecasting.base import FamilyOptions, Forecaster

log = logging.getLogger(__name__)


class LocalOptions(FamilyOptions):
    """Options every statistical family has."""

    max_history: int = Field(
        1000, ge=8, description="Most recent points of each series the model is fitted on "
        "(the forecast window; at least features.lookback).")
    n_jobs: int = Field(
        0, ge=0, description="Processes fitting series in parallel (0: one per CPU).")


class LocalForecaster(Forecaster):
    """Fit ``statistical.METHODS[family]`` per series at every forecast."""

    Options: ClassVar[type[FamilyOptions]] = LocalOptions
    local: ClassVar[bool] = True
    #: options passed to the fitting function (the others are the window's and the pool's)
    method_options: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        self.fallbacks = 0  # series of the last forecast that fell back to seasonal naive
        self.forecasted = 0

    def use_history(self, longest: int) -> None:
        """Widen the window to the longest series (``max_history`` at most)."""
        lookback = max(self.spec.lookback, min(int(self.options["max_history"]), longest))
        self.spec = replace(self.spec, lookback=lookback)

    def predict(self, x: np.ndarray, covariates: dict[str, np.ndarray] | None = None
                ) -> np.ndarray:
        n = len(x)
        loc, scale = _affine(covariates, n)
        raw = x * scale[:, None] + loc[:, None]
        series = [row[~np.isnan(row)] for row in raw]  # NaN: left padding of short series
        options = {k: self.options[k] for k in self.method_options}
        result = statistical.forecast_many(self.family, series, self.spec.horizon,
                                           self.spec.periods, options,
                                           int(self.options["n_jobs"]))
        self.fallbacks, self.forecasted = result.fallbacks, n
        if result.fallbacks:
            log.warning("%s: %s", self.name, self.notes()[0])
        return self.check_output(x, (result.yhat - loc[:, None]) / scale[:, None])

    def notes(self) -> list[str]:
        if not self.fallbacks:
            return []
        return [f"{self.fallbacks} of {self.forecasted} series fell back to seasonal naive "
                f"in the last forecast (too short, or the {self.family} fit failed)"]


def _affine(covariates: dict[str, Any] | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-window (loc, scale) that undo the pipeline's scaling (identity when absent)."""
    if covariates is None or "loc" not in covariates:
        return np.zeros(n), np.ones(n)
    return (np.asarray(covariates["loc"], np.float64),
            np.asarray(covariates["scale"], np.float64))
