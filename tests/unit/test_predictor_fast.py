"""Predictor: the direct path for frames already in canonical order gives exactly what the
general (coerce, sort, split) path gives, with and without covariates."""

import numpy as np
import pandas as pd
import pytest

import deepcast.forecasting.models.baselines  # noqa: F401  (registers the baselines)
from deepcast.features.covariates import CovariateEncoder, CovariateSpec
from deepcast.features.errors import DataError
from deepcast.features.scalers import SeriesScaler
from deepcast.features.schema import ColumnSpec, future_index
from deepcast.features.windows import panel_from_frame, window_starts
from deepcast.forecasting.base import InputSpec, TrainingData, TrainSettings, WindowSpec
from deepcast.forecasting.models import build_forecaster
from deepcast.forecasting.predictor import Predictor


def _frame(freq):
    rng = np.random.default_rng(0)
    lengths = {"b": 30, "a": 26, "c10": 40, "c2": 33}
    rows = []
    for sid, n in lengths.items():
        ds = (np.arange(n) + 3 if freq == 1
              else pd.date_range("2020-01-01", periods=n, freq=freq).to_numpy())
        rows.append(pd.DataFrame({"unique_id": sid, "ds": ds,
                                  "y": rng.normal(10, 2, n).cumsum()}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("freq", [1, "h"])
def test_sorted_frame_matches_general_path(freq):
    df = _frame(freq)
    ordered = df.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    scaler = SeriesScaler().fit(panel_from_frame(ordered[ordered.unique_id != "c2"]))
    forecaster = build_forecaster("drift", "drift", WindowSpec(12, 5, 4), {})
    pred = Predictor(forecaster, scaler, ColumnSpec("unique_id", "ds", "y", freq))
    assert pred._sorted_panel(ordered) is not None  # the direct path is taken
    for general in (df, ordered.astype({"y": "float32"}).iloc[::-1]):  # unsorted: general
        assert pred._sorted_panel(general) is None
        pd.testing.assert_frame_equal(pred.predict(ordered), pred.predict(general))
    # a repeated timestamp is not canonical: the general path handles (and reports) it
    dup = ordered.copy()
    dup.loc[1, "ds"] = dup.loc[0, "ds"]
    assert pred._sorted_panel(dup) is None


def _monthly_with_covariates():
    """Four monthly series with a categorical static, a past covariate, calendar features
    (month) and a series-ID embedding: the default path's inputs and then some."""
    df = _frame("MS").assign(kind=lambda d: np.where(d.unique_id < "c", "x", "y"))
    df["temp"] = np.sin(np.arange(len(df)) / 3.0)
    ordered = df.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    ordered["unique_id"] = ordered["unique_id"].astype("string")
    spec = CovariateSpec(static=("kind",), past=("temp",), categorical=("kind",),
                         calendar=("month",), id_embedding=2)
    panel = panel_from_frame(ordered)
    scaler = SeriesScaler().fit(panel)
    enc = CovariateEncoder(spec, "MS").fit(ordered)
    scaled = scaler.transform(panel)
    starts = window_starts(scaled.offsets, 12, 5)
    inputs = InputSpec(n_past=1, n_future=spec.n_future,
                       cardinalities=tuple(enc.cardinalities), embedding_dim=2,
                       n_series=len(enc.ids) + 1, id_embedding=2)
    f = build_forecaster("mlp", "mlp", WindowSpec(12, 5, 12), {"hidden_size": 8}, inputs)
    f.fit(TrainingData(scaled.values, starts, starts[:0], enc.transform(ordered),
                       scaled.offsets), TrainSettings(max_epochs=1, batch_size=16))
    return ordered, Predictor(f, scaler, ColumnSpec("unique_id", "ds", "y", "MS"), enc)


def test_covariates_on_the_direct_path_match_the_full_history_encoding():
    """Datetime ds with calendar features (the default path) takes the direct path; only
    the last lookback rows are encoded, which gives what encoding the whole history gives
    (the backtest path, ``predict_windows``, encodes every row)."""
    ordered, pred = _monthly_with_covariates()
    assert pred._sorted_panel(ordered) is not None
    shuffled = ordered.astype({"unique_id": object}).sample(frac=1.0, random_state=1)
    assert pred._sorted_panel(shuffled) is None
    fast = pred.predict(ordered)
    pd.testing.assert_frame_equal(fast, pred.predict(shuffled))
    # the same forecasts from a backtest cut-off at the end of the same history
    truth = pd.concat([ordered, ordered.groupby("unique_id").tail(5).assign(
        ds=lambda d: d["ds"] + pd.DateOffset(months=5))]).sort_values(
        ["unique_id", "ds"], ignore_index=True)
    lengths = ordered.groupby("unique_id").size().to_numpy()
    windows = pred.predict_windows(truth, lengths[:, None])
    np.testing.assert_allclose(windows["yhat"].to_numpy(), fast["yhat"].to_numpy(),
                               rtol=1e-5)
    np.testing.assert_array_equal(windows["ds"].to_numpy(), fast["ds"].to_numpy())
    # without a covariate column the model was trained with, the general path says so
    with pytest.raises(DataError, match="temp"):
        pred.predict(ordered.drop(columns="temp"))


@pytest.mark.parametrize("freq", ["MS", "ME", "h", "15min", "D", "W-SUN", "QS-OCT"])
def test_future_dates_are_each_series_own_date_range(freq):
    """future_index builds one range per distinct end date and shares it: the dates equal
    ``date_range`` after each series' own end, for series ending on different dates."""
    ends = pd.date_range("2001-01-01", periods=40, freq=freq).to_numpy()
    last = ends[np.random.default_rng(0).integers(0, 40, 200)]
    expected = np.concatenate([pd.date_range(t, periods=8, freq=freq)[1:].to_numpy()
                               for t in last]).astype("datetime64[us]")
    np.testing.assert_array_equal(future_index(last, freq, 7), expected)
