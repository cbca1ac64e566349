"""The fallback forecast of series a model cannot forecast: seasonal naive with a full
season observed, else naive, on the data's own date grid; marked, counted and named."""

import numpy as np
import pandas as pd

from deepcast.pipelines.fallback import FALLBACK, fallback_forecast, with_fallback


def _frame() -> pd.DataFrame:
    month = lambda start, n: list(pd.date_range(start, periods=n, freq="MS"))  # noqa: E731
    return pd.DataFrame({
        "unique_id": ["a"] * 14 + ["b"] * 3 + ["c"] * 2 + ["d"] * 5,
        "ds": month("2020-01-01", 14) + month("2021-01-01", 3) + month("2021-01-01", 2)
        + month("2019-01-01", 5),
        "y": list(range(14)) + [5.0, np.nan, 7.0] + [np.nan, np.nan] + [1.0] * 5,
    })


def test_seasonal_naive_with_a_season_else_naive():
    fb = fallback_forecast(_frame(), ["a", "b", "c"], "MS", 4, 12)
    a = fb.rows[fb.rows["unique_id"] == "a"]
    # a: Jan 2020 .. Feb 2021 = 0 .. 13; Mar-Jun 2021 repeat Mar-Jun 2020 (2 .. 5)
    assert a["yhat"].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert a["ds"].tolist() == list(pd.date_range("2021-03-01", periods=4, freq="MS"))
    b = fb.rows[fb.rows["unique_id"] == "b"]  # 2 observed values: naive from the last
    assert b["yhat"].tolist() == [7.0] * 4 and set(b[FALLBACK]) == {"naive"}
    assert b["ds"].iloc[0] == pd.Timestamp("2021-04-01")
    assert fb.methods == {"naive": 1, "seasonal_naive": 1} and fb.n_series == 2
    assert fb.without_values == ("c",)  # nothing observed: no rows, but named
    first, second = fb.notes(24)
    assert "2 series are shorter than the model's 24 points" in first and "a, b" in first
    assert "no observed value" in second and second.endswith(": c")


def test_integer_steps_and_no_season():
    frame = pd.DataFrame({"unique_id": ["x"] * 3, "ds": [10, 12, 14], "y": [1.0, 2.0, 3.0]})
    fb = fallback_forecast(frame, ["x"], 2, 3, 1)
    assert fb.rows["ds"].tolist() == [16, 18, 20] and fb.rows["yhat"].tolist() == [3.0] * 3


def test_rows_join_the_models_forecast_marked_and_ordered():
    fc = pd.DataFrame({"unique_id": ["z", "z"],
                       "ds": pd.date_range("2022-01-01", periods=2, freq="MS"),
                       "yhat": [1.0, 2.0], "yhat_lo_80": [0.5, 1.5],
                       "model_name": ["mlp", "mlp"]})
    both = with_fallback(fc, fallback_forecast(_frame(), ["d"], "MS", 2, 12), "mlp")
    assert both["unique_id"].tolist() == ["d", "d", "z", "z"]
    # the served model's name on every row: the first row (a fallback one) names the model
    assert both["model_name"].tolist() == ["mlp"] * 4
    assert both[FALLBACK].tolist() == ["naive", "naive", "", ""]
    assert both["yhat_lo_80"].isna().tolist() == [True, True, False, False]
    assert with_fallback(fc, None) is fc  # data.fallback: none
