"""A fitted forecaster with its scaler, covariate encoder and column spec: history frame ->
forecast frame.

The input frame holds each series' history and, when the model uses future covariates,
rows after the last observation with the covariates filled in and the target left empty
(or they come as a separate ``future`` frame). The forecast frame is ``unique_id, ds,
yhat`` and, for a quantile model, one ``yhat_q<percent>`` column per level (``yhat`` is
then the median, ``yhat_q50``).

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

from deepcast.features.covariates import CovariateEncoder, check_future, split_future
from deepcast.features.errors import DataError
from deepcast.features.scalers import SeriesScaler
from deepcast.features.schema import (
    DS,
    ID,
    ColumnSpec,
    Y,
    coerce_long_frame,
    future_index,
    same_as_previous,
    sort_long_frame,
)
from deepcast.features.windows import Panel, pad_panel, panel_from_frame, window_inputs
from deepcast.forecasting import conformal
from deepcast.forecasting.base import Forecaster
from deepcast.forecasting.keras_model import quantile_column
from deepcast.forecasting.models import load_forecaster
from deepcast.forecasting.reconcile import Reconciler

BUNDLE_FILE = "bundle.json"
SCALER_FILE = "scaler.json"
ENCODER_FILE = "covariates.json"
FORECASTER_DIR = "forecaster"


class Predictor:
    """Forecast the ``horizon`` steps after the end of every series in a history frame."""

    def __init__(self, forecaster: Forecaster, scaler: SeriesScaler, columns: ColumnSpec,
                 encoder: CovariateEncoder | None = None, min_history: int | None = None,
                 conformal: dict[str, list[float]] | None = None,
                 conformal_notes: list[str] | None = None,
                 conformal_scale: str = conformal.RECENT) -> None:
        self.forecaster = forecaster
        self.scaler = scaler
        self.columns = columns
        self.encoder = encoder
        # conformal quantiles of normalised residuals per level and step (forecasting.conformal)
        self.conformal = conformal
        self.conformal_scale = conformal_scale  # what the table's scores were divided by
        # levels asked for but left out of the table, and why (shown in runs and reports)
        self.conformal_notes = list(conformal_notes or [])
        # shortest history forecast: the lookback, or 1 point for models trained with
        # data.short_series: pad (the missing history is padded and masked)
        self.min_history = min_history or self.lookback
        # forecasts, quantiles and bands floored at 0 (data.nonnegative): a count or a
        # sales figure below zero is never right, and flooring never moves one further
        # from a truth that is >= 0
        self.nonnegative = False
        # a hierarchy's reconciliation (forecasting.reconcile): forecasts that add up
        self.reconciler: Reconciler | None = None

    @property
    def name(self) -> str:
        return self.forecaster.name

    @property
    def lookback(self) -> int:
        return self.forecaster.spec.lookback

    @property
    def horizon(self) -> int:
        return self.forecaster.spec.horizon

    @property
    def covariate_columns(self) -> tuple[str, ...]:
        return self.encoder.spec.columns if self.encoder is not None else ()

    def canonical(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Accept the training column names or the canonical ones; return a sorted frame
        with the covariate columns (rows with an empty target are kept: future rows)."""
        spec = self.columns
        if {ID, DS, Y} <= set(frame.columns) and not {
            spec.id_col, spec.time_col, spec.target_col
        } <= set(frame.columns):
            spec = ColumnSpec(ID, DS, Y, spec.freq)
        df = coerce_long_frame(frame, spec, source="history")
        missing = [c for c in self.covariate_columns if c not in df.columns]
        if missing:
            raise DataError(f"history lacks the covariate column(s) {missing} the model was "
                            "trained with", hint="pass the same columns as in training")
        bad = df[ID].isna() | df[DS].isna() | df["_y_invalid"] | np.isinf(
            df[Y].to_numpy(dtype="float64"))
        if bad.any():
            rows = df.loc[bad, "_row"].head(5).tolist()
            raise DataError(f"history has {int(bad.sum())} row(s) with a missing/invalid id, "
                            f"time or non-finite value (rows {rows})",
                            hint="validate the data first (deepcast validate)")
        df = sort_long_frame(df[[ID, DS, Y, *self.covariate_columns]])
        if spec.integer_time:
            df[DS] = df[DS].astype("int64")
        return df

    def predict(self, frame: pd.DataFrame, future: pd.DataFrame | None = None
                ) -> pd.DataFrame:
        """Forecast frame ``unique_id, ds, yhat`` (one row per series and future step);
        for a hierarchy, every level's series (built from the bottom ones when ``frame``
        has only those), reconciled, with their ``level``."""
        if self.reconciler is None:
            return self._predict(frame, future)
        frame = self.reconciler.with_levels(frame, self.columns)
        return self.reconciler.labelled(self.reconciler.apply(self._predict(frame, future)))

    def _predict(self, frame: pd.DataFrame, future: pd.DataFrame | None = None
                 ) -> pd.DataFrame:
        fast = self._sorted_panel(frame) if future is None else None
        if fast is not None:
            panel, source = fast
            future_rows = None
        else:
            panel, source, future_rows = self._history(frame, future)
        short = panel.ids[panel.lengths < self.min_history]
        if len(short):
            raise DataError(
                f"{len(short)} series have fewer than {self.min_history} points: "
                f"{', '.join(map(str, short[:5]))}{' ...' if len(short) > 5 else ''}",
                hint="pass more history for these series, drop them, or train with "
                "data.short_series: pad",
            )
        L, H = self.lookback, self.horizon
        params = self.scaler.params_for(panel)  # once: transform and inverse share them
        # only the last L points reach the model: scale and encode those, not the history
        rows, tail_offsets = panel.tail_positions(L)
        recent = Panel(panel.ids, panel.values[rows], tail_offsets, panel.last_ds)
        scaled = recent.with_values(params.apply(recent.values, recent.lengths))
        pads = np.maximum(L - recent.lengths, 0)
        padded = pad_panel(scaled, pads) if pads.any() else scaled
        dates = future_index(panel.last_ds, self.columns.freq, H)
        cov = (self.encoder.transform(source.iloc[rows]).left_pad(tail_offsets, pads)
               if self.encoder is not None else None)
        covariates = window_inputs(padded.values, padded.ends - L, L, 0, cov, padded.offsets)
        x = covariates.pop("y")[..., 0]
        covariates.update(loc=params.loc, scale=params.scale)  # for local (unscaled) models
        if cov is not None:  # the horizon's future covariates come with the request
            ahead = check_future(future_rows, panel.ids, dates, self.encoder.spec.future, H)
            block = self.encoder.future_values(ahead).reshape(panel.n_series, H, -1)
            covariates["future"] = np.concatenate([covariates["future"], block], axis=1)
        yhat = params.invert(self.forecaster.predict(x, covariates))
        levels = self.forecaster.quantiles
        point = yhat[..., levels.index(0.5)] if levels else yhat
        out = {ID: np.repeat(panel.ids, H), DS: dates, **_value_columns(yhat, levels)}
        if self.conformal:
            scale = conformal.band_scale(panel, panel.lengths,
                                         self.forecaster.spec.season_length, H,
                                         self.conformal_scale)
            bands = conformal.apply(point, scale, self.conformal)
            out.update({k: v.ravel() for k, v in bands.items()})
        return pd.DataFrame(self._floored(out))

    def _floored(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``columns`` with every value column (``yhat*``) floored at 0 when the model is
        ``nonnegative``."""
        if not self.nonnegative:
            return columns
        return {k: np.maximum(v, 0.0) if k.startswith("yhat") else v
                for k, v in columns.items()}

    def _history(self, frame: pd.DataFrame, future: pd.DataFrame | None
                 ) -> tuple[Panel, pd.DataFrame, pd.DataFrame]:
        """The general path: (panel, canonical history rows aligned with it, future rows),
        after coercing, sorting and checking ``frame`` (and ``future``)."""
        history, future_rows = split_future(self.canonical(frame), Y)
        if future is not None:
            future_rows = self.canonical(
                future.assign(**{self.columns.target_col: np.nan})
                if self.columns.target_col not in future.columns else future)
        gaps = history[Y].isna()
        if gaps.any():
            raise DataError(
                f"history has {int(gaps.sum())} missing target value(s) before the end "
                f"of series {history.loc[gaps, ID].unique()[:5].tolist()}",
                hint="fill them (or set data.missing_y: interpolate and validate)")
        return panel_from_frame(history), history, future_rows

    def _sorted_panel(self, frame: pd.DataFrame) -> tuple[Panel, pd.DataFrame] | None:
        """(panel, frame with canonical column names) read straight from ``frame`` when it
        is already in canonical form -- string ids sorted, ``ds`` of the right type strictly
        increasing within each series, finite numeric targets, the covariate columns
        present and no future rows needed -- else None (the general path, which coerces,
        sorts and reports bad rows, gives the same result slower). This skips the sort and
        string handling that dominate the time of a large batch forecast; calendar
        features and the other covariates are then encoded for the last ``lookback`` rows
        of each series only."""
        spec = self.columns
        names = (spec.id_col, spec.time_col, spec.target_col)
        if not set(names) <= set(frame.columns):
            names = (ID, DS, Y)
        cov = self.covariate_columns
        if not set(names + cov) <= set(frame.columns) or (
                self.encoder is not None and self.encoder.spec.future):
            return None  # future covariates come as rows with an empty target
        ids, ds, y = (frame[c] for c in names)
        if (len(frame) < 2 or not isinstance(ids.dtype, pd.StringDtype)
                or not pd.api.types.is_float_dtype(y.dtype) or ids.hasnans):
            return None
        if spec.integer_time:
            if not (pd.api.types.is_integer_dtype(ds.dtype) and ds.dtype.kind == "i"):
                return None
            steps = ds.to_numpy(np.int64)
        else:
            if ds.dtype.kind != "M":  # naive datetime64 only (strings, tz: general path)
                return None
            steps = ds.to_numpy().astype("datetime64[us]")
        values = y.to_numpy(np.float64)
        if not np.isfinite(values).all():
            return None
        change = ~same_as_previous(ids)[1:]  # row i+1 starts a series
        first = np.concatenate([[0], np.flatnonzero(change) + 1])
        series = ids.iloc[first].reset_index(drop=True)
        # each id in one run, runs in sorted order (the general path's order)
        if len(series) > 1 and not (series.iloc[1:].reset_index(drop=True)
                                    > series.iloc[:-1].reset_index(drop=True)).all():
            return None
        if not (np.diff(steps.view(np.int64))[~change] > 0).all():  # increasing in series
            return None
        offsets = np.concatenate([first, [len(frame)]]).astype(np.int64)
        panel = Panel(series.to_numpy().astype(str), values.astype(np.float32), offsets,
                      steps[offsets[1:] - 1])
        source = frame[list(names + cov)].set_axis([ID, DS, Y, *cov], axis=1)
        return panel, source.set_axis(pd.RangeIndex(len(frame)), axis=0)

    def predict_windows(self, frame: pd.DataFrame, cuts: np.ndarray) -> pd.DataFrame:
        """Backtest forecasts in one batched call: for each series ``i`` and cut-off ``k``,
        forecast the ``horizon`` points after its first ``cuts[i, k]`` points from those
        points only (future covariates over the horizon come from ``frame``, which holds
        the truth; past covariates and targets after the cut-off are never read).

        Returns ``unique_id, window, cutoff, ds, h, y, yhat`` (+ quantile columns), where
        ``cutoff`` is the last ``ds`` of the history and ``h`` counts 1..horizon.
        """
        df = self.canonical(frame)
        panel = panel_from_frame(df)
        cuts = np.asarray(cuts, dtype=np.int64).reshape(panel.n_series, -1)
        L, H = self.lookback, self.horizon
        n, k = cuts.shape
        if (cuts < self.min_history).any() or (cuts + H > panel.lengths[:, None]).any():
            raise ValueError("a cut-off leaves too little history or no room for the horizon")
        pads = np.maximum(L - cuts.min(axis=1), 0)
        params = self.scaler.params_for(panel)
        scaled = pad_panel(panel.with_values(params.apply(panel.values, panel.lengths)), pads)
        ends = (scaled.starts + pads)[:, None] + cuts
        starts = (ends - L).ravel()
        cov = (self.encoder.transform(df).left_pad(panel.offsets, pads)
               if self.encoder is not None else None)
        covariates = window_inputs(scaled.values, starts, L, H, cov, scaled.offsets)
        x = covariates.pop("y")[..., 0]
        covariates.update(loc=np.repeat(params.loc, k), scale=np.repeat(params.scale, k))
        raw = self.forecaster.predict(x, covariates)
        yhat = params.invert(raw.reshape((n, k) + raw.shape[1:]))
        pos = (panel.starts[:, None, None] + cuts[:, :, None]
               + np.arange(H)[None, None, :]).reshape(-1)
        ds, y = df[DS].to_numpy(), df[Y].to_numpy()
        out = {ID: np.repeat(panel.ids, k * H),
               "window": np.tile(np.repeat(np.arange(k), H), n),
               "cutoff": np.repeat(ds[(panel.starts[:, None] + cuts - 1).reshape(-1)], H),
               DS: ds[pos], "h": np.tile(np.arange(1, H + 1), n * k), "y": y[pos]}
        fc = pd.DataFrame(self._floored(
            {**out, **_value_columns(yhat, self.forecaster.quantiles)}))
        if self.reconciler is None:
            return fc
        return self.reconciler.labelled(self.reconciler.apply(fc, key=("window", DS)))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.forecaster.save(path / FORECASTER_DIR)
        (path / SCALER_FILE).write_text(json.dumps(self.scaler.to_dict()))
        if self.encoder is not None:
            (path / ENCODER_FILE).write_text(json.dumps(self.encoder.to_dict()))
        (path / BUNDLE_FILE).write_text(json.dumps({
            "columns": asdict(self.columns), "min_history": self.min_history,
            "conformal": self.conformal, "conformal_notes": self.conformal_notes,
            "conformal_scale": self.conformal_scale,
            "nonnegative": self.nonnegative, "format": 3,
            "reconciler": None if self.reconciler is None else self.reconciler.to_dict(),
        }, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        path = Path(path)
        meta = json.loads((path / BUNDLE_FILE).read_text())
        scaler = SeriesScaler.from_dict(json.loads((path / SCALER_FILE).read_text()))
        encoder = (CovariateEncoder.from_dict(json.loads((path / ENCODER_FILE).read_text()))
                   if (path / ENCODER_FILE).is_file() else None)
        predictor = cls(load_forecaster(path / FORECASTER_DIR), scaler,
                        ColumnSpec(**meta["columns"]), encoder, meta.get("min_history"),
                        meta.get("conformal"), meta.get("conformal_notes"),
                        # older bundles' tables were calibrated on whole-history scales
                        meta.get("conformal_scale", conformal.HISTORY))
        predictor.nonnegative = bool(meta.get("nonnegative", False))  # older bundles: off
        if meta.get("reconciler"):
            predictor.reconciler = Reconciler.from_dict(meta["reconciler"])
        return predictor


def _value_columns(yhat: np.ndarray, levels: tuple[float, ...]) -> dict[str, np.ndarray]:
    """``yhat`` (the median for a quantile model) and one ``yhat_q..`` column per level,
    flattened; ``yhat`` (..., horizon) or (..., horizon, levels)."""
    if not levels:
        return {"yhat": yhat.reshape(-1)}
    columns = {quantile_column(q): yhat[..., i].reshape(-1) for i, q in enumerate(levels)}
    return {"yhat": columns[quantile_column(0.5)], **columns}
