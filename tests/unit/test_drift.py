"""Drift check on hand-made frames: each measure breaches where it should, and only there."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import DataError
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.drift import (
    DriftThresholds,
    check_drift,
    check_profile_drift,
    merge_profiles,
    reference_profile,
    thresholds_of,
)
from deepcast.pipelines.ingest import cut_at, parse_as_of
from tests.conftest import pipeline_dict

T = DriftThresholds()  # level 3, scale 2, missing +10 %, new/vanished 20 %, share 10 %


def frame(series: dict[str, list[float]], start: str = "2024-01-01") -> pd.DataFrame:
    rows = []
    for uid, values in series.items():
        ds = pd.date_range(start, periods=len(values), freq="D")
        rows.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": values}))
    return pd.concat(rows, ignore_index=True)


def wave(level: float, amp: float = 1.0, n: int = 20) -> list[float]:
    """level +- amp, alternating: mean ``level``, std ``amp`` over any even window."""
    return [level + amp * (1 if i % 2 else -1) for i in range(n)]


BASE = {f"s{i}": wave(10.0 * (i + 1)) for i in range(10)}


def test_profile_summarises_the_last_window_of_each_series():
    df = frame({"a": [100.0] * 10 + wave(5.0, 2.0, 10), "b": [1.0, np.nan, 3.0, 5.0]})
    p = reference_profile(df, window=10)
    a, b = p["series"]["a"], p["series"]["b"]
    assert a == {"level": 5.0, "scale": 2.0, "missing_rate": 0.0, "length": 20,
                 "last_ds": "2024-01-20T00:00:00"}
    assert b["level"] == 3.0 and b["missing_rate"] == 0.25 and b["length"] == 4
    assert p["global"]["n_series"] == 2 and p["global"]["n_rows"] == 24
    json.dumps(p)  # JSON-able as logged to MLflow


def test_shards_profiles_merge_into_the_whole_panels():
    """Each series whole in one shard: the merged profile is the panel's, globals included,
    whatever the shards' order (a missing value and a one-point series included), up to
    the last digit (pandas' grouped means round differently in a bigger frame)."""
    rng = np.random.default_rng(0)
    series = {f"s{i:02d}": list(rng.normal(10 * (i + 1), i + 1, 20)) for i in range(12)}
    series["s03"][-2] = np.nan
    series["s07"] = [5.0]
    whole = reference_profile(frame(series), 8)
    keys = sorted(series)
    shards = [reference_profile(frame({k: series[k] for k in keys[lo:lo + 5]}), 8)
              for lo in (10, 5, 0)]
    merged = merge_profiles(shards)
    assert list(merged["series"]) == list(whole["series"]) == keys
    for a, b in [(merged["global"], whole["global"]),
                 *zip(merged["series"].values(), whole["series"].values(), strict=True)]:
        assert a.pop("last_ds", None) == b.pop("last_ds", None)
        assert a == pytest.approx(b, rel=1e-14)


def test_todays_profile_drifts_as_todays_rows_do():
    """From shards, today's rows are a profile merged from theirs: compared with the
    champion's, it gives the report the rows themselves give (a window the profiles do
    not share is not compared)."""
    ref = reference_profile(frame(BASE), 8)
    today = frame({**{k: v for k, v in BASE.items() if k != "s9"},
                   "s0": wave(500.0), "s1": [np.nan] * 20, "new": wave(3.0)})
    rows = check_drift(ref, today, T, "block")
    profile = check_profile_drift(ref, reference_profile(today, 8), T, "block")
    assert rows.breached and rows.blocking
    assert (profile.measures, profile.breaches, profile.new_series, profile.vanished_series,
            profile.n_new) == (rows.measures, rows.breaches, rows.new_series,
                               rows.vanished_series, rows.n_new)
    assert [r["unique_id"] for r in rows.series] == ["s0", "s1"]  # NaN where undefined
    pd.testing.assert_frame_equal(pd.DataFrame(profile.series), pd.DataFrame(rows.series))
    other = check_profile_drift(ref, reference_profile(today, 5), T, "block")
    assert not other.breached and "last 8 points" in other.note


def test_same_data_passes():
    p = reference_profile(frame(BASE), window=10)
    report = check_drift(p, frame(BASE), T)
    assert report.checked and not report.breached and not report.blocking
    assert report.measures["level_shift"] == 0.0 and report.measures["scale_ratio"] == 1.0


def test_level_shift_of_one_series_is_reported_not_global():
    p = reference_profile(frame(BASE), window=10)
    new = dict(BASE, s3=wave(40.0 + 4.0))  # +4 reference scales
    report = check_drift(p, frame(new), T, on_breach="block")
    assert [r["unique_id"] for r in report.series] == ["s3"]
    assert report.series[0]["level_shift"] == pytest.approx(4.0)
    assert "level shifted by 4.00" in report.series[0]["why"][0]
    # 1 of 10 series is not more than 10 %, and the total moved by 4 / sqrt(10) < 3
    assert report.breaches == [] and not report.blocking


def test_just_under_the_threshold_passes():
    p = reference_profile(frame(BASE), window=10)
    report = check_drift(p, frame(dict(BASE, s3=wave(40.0 + 2.9))), T)
    assert not report.breached


def test_shift_of_many_series_is_a_global_breach_that_blocks():
    p = reference_profile(frame(BASE), window=10)
    new = {k: [v + 5.0 for v in vals] for k, vals in BASE.items()}
    report = check_drift(p, frame(new), T, on_breach="block")
    assert len(report.series) == 10
    assert any("total of the 10 common series: level shifted" in b for b in report.breaches)
    assert any("10 of 10 series drifted" in b for b in report.breaches)
    assert report.blocking and "BLOCKED" in report.summary()
    assert not check_drift(p, frame(new), T, on_breach="warn").blocking


def test_scale_ratio_both_ways():
    p = reference_profile(frame(BASE), window=10)
    wider = check_drift(p, frame(dict(BASE, s0=wave(10.0, 2.5))), T)
    assert wider.series[0]["scale_ratio"] == pytest.approx(2.5)
    narrower = check_drift(p, frame(dict(BASE, s0=wave(10.0, 0.4))), T)
    assert narrower.series[0]["scale_ratio"] == pytest.approx(2.5)
    assert not check_drift(p, frame(dict(BASE, s0=wave(10.0, 1.9))), T).series


def test_missing_rate_rise():
    p = reference_profile(frame(BASE), window=10)
    holes = BASE["s0"][:17] + [np.nan] * 3  # 3 of the last 10 missing
    report = check_drift(p, frame(dict(BASE, s0=holes)), T)
    assert report.series[0]["missing_rate_rise"] == pytest.approx(0.3)
    assert "missing rate rose by 30.0%" in report.series[0]["why"][-1]


def test_new_and_vanished_series_shares():
    p = reference_profile(frame(BASE), window=10)
    new = {k: v for k, v in BASE.items() if k not in ("s8", "s9")}  # 2 of 10 gone: 20 %
    new |= {"n1": wave(1.0), "n2": wave(1.0), "n3": wave(1.0)}  # 3 new: 30 %
    report = check_drift(p, frame(new), T)
    assert report.vanished_series == ["s8", "s9"] and report.new_series == ["n1", "n2", "n3"]
    assert report.measures["vanished_series_share"] == pytest.approx(0.2)
    assert [b.split(" (")[0] for b in report.breaches] == ["3 new series"]  # 20 % is allowed
    report = check_drift(p, frame({"x": wave(1.0)}), T)
    assert "no series in common with the reference" in report.breaches


def test_constant_reference_series_does_not_divide_by_zero():
    p = reference_profile(frame({"a": [5.0] * 12}), window=6)
    assert not check_drift(p, frame({"a": [5.0] * 13}), T).breached
    report = check_drift(p, frame({"a": [5.0] * 12 + [6.0] * 6}), T)
    assert report.series[0]["level_shift"] > 1e6 and report.series[0]["scale_ratio"] == 1.0


def test_thresholds_and_window_come_from_the_yaml(retail_csv):
    cfg = parse_config(pipeline_dict(retail_csv, drift={"on_breach": "block", "level_shift": 1.5,
                                                         "window": 12}))
    assert thresholds_of(cfg.drift) == DriftThresholds(level_shift=1.5)
    assert cfg.drift.window == 12 and cfg.drift.on_breach == "block"


def test_unknown_profile_format_is_a_clear_error():
    with pytest.raises(DataError, match="unknown format"):
        check_drift({"version": 99}, frame(BASE), T)


def test_as_of_keeps_rows_up_to_the_cut_off(retail_csv):
    cfg = parse_config(pipeline_dict(retail_csv))
    df = frame({"a": wave(1.0, n=10)})
    assert cut_at(df, parse_as_of("2024-01-04", cfg.data))["ds"].max() == pd.Timestamp(
        "2024-01-04")
    # an aware timestamp is compared in UTC, as ingest stores ds
    cut = cut_at(df, parse_as_of("2024-01-05T01:00:00+02:00", cfg.data))
    assert cut["ds"].max() == pd.Timestamp("2024-01-04")
    with pytest.raises(DataError, match="no rows with ds <= as_of"):
        cut_at(df, parse_as_of("2023-01-01", cfg.data))

