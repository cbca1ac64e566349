"""Validation catches what the pipeline cannot compute with: dates whose forecast falls
outside the representable range, values beyond float32, a lookback longer than every
series, and series that stopped long before the others (a warning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import ConfigError
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.ingest import ingest
from deepcast.pipelines.validate import validate_long_frame
from tests.unit.test_validate import AUS, M3, failure, make_cfg, raw_csv, run_edited

FIRST = "A3349335T"  # the first retail series (96 monthly rows from 2011-01-01)


def _moved(raw: pd.DataFrame, uid: str, end: str) -> pd.DataFrame:
    """``raw`` with series ``uid`` shifted to end at ``end`` (same monthly grid)."""
    out = raw.copy()
    mask = out["unique_id"] == uid
    out.loc[mask, "ds"] = pd.date_range(end=end, periods=int(mask.sum()),
                                        freq="MS").strftime("%Y-%m-%d")
    return out


def test_forecast_dates_past_year_9999_fail_naming_the_series(tmp_path: Path) -> None:
    raw = _moved(raw_csv(), FIRST, "9999-09-01")  # + 6 months: year 10000
    _, report = run_edited(tmp_path, raw)
    assert not report.success
    res = failure(report, "forecast dates")
    assert res.unexpected_count == 1
    assert res.examples[0]["unique_id"] == FIRST and res.examples[0]["ds"] == "9999-09-01"
    assert "9999-12-31" in res.description and "features.horizon 6" in res.description
    text = report.summary()
    assert f"series {FIRST}, ds 9999-09-01" in text and "fix:" in text


def test_forecast_dates_up_to_year_9999_pass(tmp_path: Path) -> None:
    raw = _moved(raw_csv(), FIRST, "9999-06-01")  # + 6 months: 9999-12-01
    _, report = run_edited(tmp_path, raw)
    assert report.success, report.summary()


def test_integer_steps_that_overflow_int64_fail(tmp_path: Path) -> None:
    raw = raw_csv(M3)
    first = raw["unique_id"].iloc[0]
    mask = raw["unique_id"] == first
    top = np.iinfo(np.int64).max
    raw.loc[mask, "ds"] = [str(top - 3 - i) for i in range(int(mask.sum()))][::-1]
    _, report = run_edited(tmp_path, raw, freq=1)
    res = failure(report, "forecast dates")
    assert res.examples[0]["unique_id"] == first


def test_y_beyond_float32_fails(tmp_path: Path) -> None:
    raw = raw_csv()
    raw.loc[4, "y"] = "1e39"
    raw.loc[7, "y"] = "-5e38"
    _, report = run_edited(tmp_path, raw)
    res = failure(report, "float32")
    assert res.unexpected_count == 2 and [ex["row"] for ex in res.examples] == [5, 8]
    assert "3.4e+38" in res.description
    assert [r.description for r in report.failures()] == [res.description]  # not "inf" too


def test_y_beyond_float32_is_quarantined(tmp_path: Path) -> None:
    raw = raw_csv()
    raw.loc[4, "y"] = "1e39"
    clean, report = run_edited(tmp_path, raw, bad_rows="quarantine", missing_y="interpolate")
    assert report.success, report.summary()
    assert report.quarantine_reasons == {"y is beyond the float32 range": 1}
    assert np.isfinite(clean["y"].to_numpy(dtype="float32")).all()


def test_covariate_beyond_float32_fails(tmp_path: Path) -> None:
    raw = raw_csv()
    raw["price"] = "1.0"
    raw.loc[3, "price"] = "4e38"
    _, report = run_edited(tmp_path, raw, past=["price"])
    res = failure(report, "price")
    assert [ex["row"] for ex in res.examples] == [4] and "float32" in res.description


def test_lookback_beyond_every_series_fails_before_windows(tmp_path: Path) -> None:
    cfg = parse_config({
        "name": "unit", "data": {"path": str(AUS), "freq": "MS", "season_length": 12},
        "features": {"lookback": 500, "horizon": 6}, "models": [{"type": "naive"}],
        "evaluation": {"test_size": 6}})
    _, report = validate_long_frame(ingest(cfg.data), cfg)
    res = failure(report, "features.lookback")
    assert "506" in res.description and "longest series has 96 rows" in res.description
    assert "90" in res.hint  # the longest lookback these series allow
    assert res.unexpected_count == 6


def test_lookback_within_the_longest_series_passes() -> None:
    cfg = make_cfg(AUS)
    _, report = validate_long_frame(ingest(cfg.data), cfg)
    assert report.success, report.summary()


@pytest.mark.parametrize("key", ["lookback", "horizon"])
def test_absurd_geometry_is_a_config_error(key: str) -> None:
    features = {"lookback": 12, "horizon": 6, key: 10**12}
    with pytest.raises(ConfigError, match=f"features.{key}: Input should be less than"):
        parse_config({"name": "unit", "data": {"path": str(AUS), "freq": "MS"},
                      "features": features, "models": [{"type": "naive"}],
                      "evaluation": {"test_size": 6}})


def test_series_plots_of_forecasts_ending_in_year_9999_render() -> None:
    """The last representable forecast month: the plot's automatic margin used to reach
    into year 10000, where matplotlib cannot go."""
    from deepcast.pipelines.plots import series_figure

    ds = pd.date_range(end="9999-06-01", periods=36, freq="MS")
    history = pd.DataFrame({"unique_id": "a", "ds": ds, "y": np.arange(36.0)})
    forecast = pd.DataFrame({"unique_id": "a", "yhat": 1.0,
                             "ds": pd.date_range("9999-07-01", periods=6, freq="MS")})
    png = series_figure(history, forecast, [("a", "example")], season_length=12, horizon=6)
    assert png and png[:4] == b"\x89PNG"
