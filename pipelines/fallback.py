"""A forecast for every series: the documented fallback for the series a model cannot
forecast.

A batch forecast drops the series shorter than the model's shortest history (with
``data.short_series: drop``: the lookback). Rather than leave them out of the file, each
gets a forecast from the simplest sound method its history allows: **seasonal naive** (the
last season repeated) with at least one full season of observed values, else **naive**
(the last value). Those rows carry the method in the ``fallback`` column, which is empty
for the model's own rows, and the forecast's notes count them. A series with no observed
value at all gets no row and is named. ``data.fallback: none`` turns this off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepcast.features.schema import DS, ID, Y, future_index

FALLBACK = "fallback"  # the forecast column naming the method of a fallback row
LISTED = 10  # series named in a note


@dataclass(frozen=True)
class Fallback:
    """The fallback rows (``unique_id, ds, yhat, fallback``) and what to tell the reader."""

    rows: pd.DataFrame
    methods: dict[str, int]  # method -> series forecast with it
    without_values: tuple[str, ...]  # series with no observed value: no forecast
    #: the observed rows (unique_id, ds, y) the forecasts came from: the report's history
    history: pd.DataFrame

    @property
    def n_series(self) -> int:
        return sum(self.methods.values())

    def notes(self, min_history: int) -> list[str]:
        """One line saying which series the fallback forecast, and why."""
        out = []
        if self.n_series:
            ids = self.rows[ID].drop_duplicates().astype(str).tolist()
            how = ", ".join(f"{n} by {m.replace('_', ' ')}" for m, n in self.methods.items())
            out.append(f"{self.n_series} series are shorter than the model's {min_history} "
                       f"points of history and were forecast by the fallback ({how}; rows "
                       f"marked in the `fallback` column): {_listed(ids)}")
        if self.without_values:
            out.append(f"{len(self.without_values)} series have no observed value and got "
                       f"no forecast: {_listed(list(self.without_values))}")
        return out


def _listed(ids: list[str]) -> str:
    more = f" and {len(ids) - LISTED} more" if len(ids) > LISTED else ""
    return ", ".join(ids[:LISTED]) + more


def fallback_forecast(frame: pd.DataFrame, ids: Sequence[str], freq: str | int,
                      horizon: int, season_length: int) -> Fallback:
    """Seasonal naive (one full season observed, ``season_length`` > 1) or naive forecasts
    of the series ``ids`` of the coerced long ``frame``: their observed values (rows with
    a ``ds`` and a number ``y``; of repeated dates the last), ``horizon`` steps of ``freq``
    after each series' last date."""
    keep = frame[ID].astype(str).isin([str(i) for i in ids]) & frame[Y].notna() \
        & frame[DS].notna()
    obs = frame.loc[keep, [ID, DS, Y]].drop_duplicates([ID, DS], keep="last")
    obs = obs.sort_values([ID, DS], kind="stable").reset_index(drop=True)
    missing = tuple(sorted(set(map(str, ids)) - set(obs[ID].astype(str))))
    if obs.empty:
        return Fallback(pd.DataFrame(columns=[ID, DS, "yhat", FALLBACK]), {}, missing, obs)
    names, starts, counts = np.unique(obs[ID].to_numpy(), return_index=True,
                                      return_counts=True)
    ends = starts + counts
    y = obs[Y].to_numpy(np.float64)
    seasonal = (counts >= season_length) & (season_length > 1)
    step = np.arange(horizon)
    # position of each forecast step's value: the same step one season back, else the last
    src = np.where(seasonal[:, None], ends[:, None] - season_length + step % season_length,
                   ends[:, None] - 1)
    method = np.where(seasonal, "seasonal_naive", "naive")
    rows = pd.DataFrame({
        ID: np.repeat(names, horizon),
        DS: future_index(obs[DS].to_numpy()[ends - 1], freq, horizon),
        "yhat": y[src].ravel(),
        FALLBACK: np.repeat(method, horizon),
    })
    kinds, n = np.unique(method, return_counts=True)
    return Fallback(rows, dict(zip(kinds.tolist(), n.tolist(), strict=True)), missing, obs)


def with_fallback(fc: pd.DataFrame, fallback: Fallback | None, model_name: str = ""
                  ) -> pd.DataFrame:
    """The model's forecast with an empty ``fallback`` column and the fallback rows among
    it (their quantile and band columns empty, their ``model_name`` the served model's, as
    their version and run are: a reader grouping by model keeps them), ordered by series;
    ``fc`` as it is when the fallback is off (None)."""
    if fallback is None:
        return fc
    out = fc.assign(**{FALLBACK: ""})
    if fallback.rows.empty:
        return out
    rows = fallback.rows.assign(model_name=model_name)
    rows = rows.astype({DS: fc[DS].dtype}) if len(fc) else rows
    both = pd.concat([out, rows], ignore_index=True)
    return both.sort_values(ID, kind="stable", ignore_index=True)
