"""``data.freq: auto``: the step is inferred from the data by validation, stated in the
summary, and the config every later stage reads carries it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import ConfigError, DataError
from deepcast.features.frequency import infer_freq
from deepcast.features.schema import ColumnSpec, coerce_long_frame, sort_long_frame
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.config.freq import check_freq
from deepcast.pipelines.ingest import ingest, parse_as_of
from deepcast.pipelines.runs.base import PLAIN, RunInputs, validated
from deepcast.pipelines.validate import resolved_config, validate_long_frame
from tests.unit.test_validate import AUS, M3, make_cfg, raw_csv, run_edited


def _frame(ds: list, uid: str = "a") -> pd.DataFrame:
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": np.arange(len(ds), dtype=float)})


def test_auto_is_a_valid_freq() -> None:
    assert check_freq("auto") == check_freq(" Auto ") == "auto"
    assert make_cfg(AUS, freq="auto").data.freq == "auto"


def test_monthly_dates_are_inferred_and_stated() -> None:
    cfg = make_cfg(AUS, freq="auto")
    clean, report = validate_long_frame(ingest(cfg.data), cfg)
    assert report.success, report.summary()
    assert report.freq == "MS"
    assert "data.freq: auto -> `MS` (pandas' alias of 6 of the 6 series" in report.summary()
    assert report.to_dict()["freq"] == "MS"
    assert resolved_config(cfg, report).data.freq == "MS"
    assert resolved_config(cfg, report).calendar == ("month",)
    assert clean["ds"].dtype == np.dtype("datetime64[us]")


def test_integer_steps_are_inferred() -> None:
    cfg = make_cfg(M3, freq="auto")
    clean, report = validate_long_frame(ingest(cfg.data), cfg)
    assert report.success, report.summary()
    assert report.freq == 1 and clean["ds"].dtype == np.int64
    assert "data.freq: auto -> `1` (the most common step" in report.summary()


def test_the_inferred_freq_checks_the_grid(tmp_path: Path) -> None:
    """Gaps do not hide the step: it is inferred from the regular stretches, and the
    grid check then names the gap."""
    raw = raw_csv().drop(index=[20, 21])
    _, report = run_edited(tmp_path, raw, freq="auto")
    assert report.freq == "MS" and not report.success
    assert "ds must be one `MS` step" in report.failures()[0].description


def test_weekly_anchor_is_inferred() -> None:
    ds = pd.date_range("2024-01-06", periods=30, freq="W-SAT")
    found = infer_freq(sort_long_frame(_frame(list(ds))))
    assert found.freq == "W-SAT" and (found.seen, found.agree) == (1, 1)


def test_most_series_decide() -> None:
    frames = [_frame(list(pd.date_range("2024-01-01", periods=20, freq="D")), f"d{i}")
              for i in range(3)]
    frames.append(_frame(list(pd.date_range("2024-01-01", periods=20, freq="h")), "hourly"))
    found = infer_freq(sort_long_frame(pd.concat(frames, ignore_index=True)))
    assert (found.freq, found.seen, found.agree) == ("D", 4, 3)


def test_irregular_dates_fail_with_a_hint() -> None:
    rng = np.random.default_rng(0)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(
        np.sort(rng.choice(10_000, 40, replace=False)), unit="min") * 37
    cfg = make_cfg(AUS, freq="auto")
    with pytest.raises(DataError) as info:
        validate_long_frame(_frame(list(stamps)), cfg)
    assert info.value.exit_code == 3
    assert "data.freq: auto could not infer a frequency" in info.value.message
    assert "series a starts 2024-01-0" in info.value.message
    assert "set data.freq" in info.value.hint


def test_auto_reads_whole_numbers_as_steps_and_the_rest_as_dates() -> None:
    spec = ColumnSpec(freq="auto")
    steps = coerce_long_frame(pd.DataFrame({"unique_id": ["a"] * 3, "ds": ["1", "2", " 3"],
                                            "y": ["1", "2", "3"]}), spec)
    assert str(steps["ds"].dtype) == "Int64"
    dates = coerce_long_frame(pd.DataFrame({"unique_id": ["a"] * 2,
                                            "ds": ["2024-01-01", "2024-01-02"],
                                            "y": ["1", "2"]}), spec)
    assert dates["ds"].dtype == np.dtype("datetime64[us]")


def test_unresolved_auto_is_refused_where_freq_is_needed() -> None:
    cfg = make_cfg(AUS, freq="auto")
    with pytest.raises(ConfigError, match="data.freq is 'auto' and was not resolved"):
        _ = cfg.calendar
    listed = parse_config({
        "name": "unit", "data": {"path": str(M3), "freq": "auto", "season_length": 12},
        "features": {"lookback": 12, "horizon": 6, "calendar": ["month"]},
        "models": [{"type": "naive"}], "evaluation": {"test_size": 6}})
    with pytest.raises(ConfigError, match="features.calendar lists calendar features"):
        validate_long_frame(ingest(listed.data), listed)


def test_as_of_under_auto_follows_its_own_form() -> None:
    data = make_cfg(AUS, freq="auto").data
    assert parse_as_of("120", data) == 120
    assert parse_as_of("2014-06-30", data) == pd.Timestamp("2014-06-30")


def test_the_run_config_carries_the_inferred_freq(tmp_path: Path) -> None:
    cfg = make_cfg(AUS, freq="auto")
    data = validated(cfg, RunInputs(report_dir=str(tmp_path / "rep")), PLAIN)
    assert data.cfg.data.freq == "MS" and cfg.data.freq == "auto"
    assert data.report.report_path and Path(data.report.report_path).is_file()
