"""A fitted forecaster with its scaler and column spec: history frame -> forecast frame.

The forecast frame is ``unique_id, ds, yhat`` and, for a quantile model, one
``yhat_q<percent>`` column per level (``yhat`` is then the median, ``yhat_q50``).

This is what gets saved as a *bundle* (a folder) and served by the MLflow pyfunc wrapper:
everything needed to forecast from a history table, with no deepcast set-up beyond the
package being installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import DataError
from features.scalers import SeriesScaler
from features.schema import DS, ID, ColumnSpec, Y, coerce_long_frame, future_index, sort_long_frame
from features.windows import last_windows, panel_from_frame
from forecasting.base import Forecaster, load_forecaster
from forecasting.keras_model import quantile_column

BUNDLE_FILE = "bundle.json"
SCALER_FILE = "scaler.json"
FORECASTER_DIR = "forecaster"


class Predictor:
    """Forecast the ``horizon`` steps after the end of every series in a history frame."""

    def __init__(self, forecaster: Forecaster, scaler: SeriesScaler, columns: ColumnSpec) -> None:
        self.forecaster = forecaster
        self.scaler = scaler
        self.columns = columns

    @property
    def name(self) -> str:
        return self.forecaster.name

    @property
    def lookback(self) -> int:
        return self.forecaster.spec.lookback

    @property
    def horizon(self) -> int:
        return self.forecaster.spec.horizon

    def canonical(self, history: pd.DataFrame) -> pd.DataFrame:
        """Accept the training column names or the canonical ones; return a sorted frame."""
        spec = self.columns
        if {ID, DS, Y} <= set(history.columns) and not {
            spec.id_col, spec.time_col, spec.target_col
        } <= set(history.columns):
            spec = ColumnSpec(ID, DS, Y, spec.freq)
        df = coerce_long_frame(history, spec, source="history")
        bad = df[ID].isna() | df[DS].isna() | ~np.isfinite(df[Y].to_numpy(dtype="float64"))
        if bad.any():
            rows = df.loc[bad, "_row"].head(5).tolist()
            raise DataError(f"history has {int(bad.sum())} row(s) with a missing/invalid id, "
                            f"time or non-finite value (rows {rows})",
                            hint="validate the data first (deepcast validate)")
        df = sort_long_frame(df[[ID, DS, Y]])
        if spec.integer_time:
            df[DS] = df[DS].astype("int64")
        return df

    def predict(self, history: pd.DataFrame) -> pd.DataFrame:
        """Forecast frame ``unique_id, ds, yhat`` (one row per series and future step)."""
        df = self.canonical(history)
        panel = panel_from_frame(df)
        short = panel.ids[panel.lengths < self.lookback]
        if len(short):
            raise DataError(
                f"{len(short)} series have fewer than lookback={self.lookback} points: "
                f"{', '.join(map(str, short[:5]))}{' ...' if len(short) > 5 else ''}",
                hint="pass more history for these series or drop them",
            )
        scaled = self.scaler.transform(panel)
        x = last_windows(scaled, self.lookback)
        yhat = self.scaler.inverse_transform(panel, self.forecaster.predict(x))
        out = {ID: np.repeat(panel.ids, self.horizon),
               DS: future_index(panel.last_ds, self.columns.freq, self.horizon)}
        levels = self.forecaster.quantiles
        if not levels:
            return pd.DataFrame({**out, "yhat": yhat.ravel()})
        quantiles = {quantile_column(q): yhat[:, :, i].ravel() for i, q in enumerate(levels)}
        return pd.DataFrame({**out, "yhat": quantiles[quantile_column(0.5)], **quantiles})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.forecaster.save(path / FORECASTER_DIR)
        (path / SCALER_FILE).write_text(json.dumps(self.scaler.to_dict()))
        (path / BUNDLE_FILE).write_text(json.dumps({"columns": asdict(self.columns),
                                                    "format": 1}, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        path = Path(path)
        meta = json.loads((path / BUNDLE_FILE).read_text())
        scaler = SeriesScaler.from_dict(json.loads((path / SCALER_FILE).read_text()))
        return cls(load_forecaster(path / FORECASTER_DIR), scaler, ColumnSpec(**meta["columns"]))
