"""Predictor: the direct path for frames already in canonical order gives exactly what the
general (coerce, sort, split) path gives."""

import numpy as np
import pandas as pd
import pytest

import deepcast.forecasting.models.baselines  # noqa: F401  (registers the baselines)
from deepcast.features.scalers import SeriesScaler
from deepcast.features.schema import ColumnSpec
from deepcast.features.windows import panel_from_frame
from deepcast.forecasting.base import WindowSpec
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
