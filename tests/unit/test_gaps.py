"""Gaps in the grid (``data.fill_gaps``, ``data.max_gap``), holes in y (``missing_y:
interpolate``) and stale series: filled where asked, refused beyond ``max_gap``, and
always said per series in the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import DataError
from deepcast.features.gaps import fill_gaps
from deepcast.features.schema import INSERTED, sort_long_frame
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.runs.store import log_train_data
from tests.unit.test_validate import AUS, M3, failure, make_cfg, raw_csv, run_edited

FIRST = "A3349335T"  # rows 0-95 of the retail slice, monthly from 2011-01-01
GAP = [20, 21]  # 2012-09-01 and 2012-10-01 of the first series


def test_gaps_fail_by_default(tmp_path: Path) -> None:
    _, report = run_edited(tmp_path, raw_csv().drop(index=GAP))
    res = failure(report, "ds must be one `MS` step")
    assert "data.fill_gaps" in res.hint


def test_gaps_are_interpolated_and_reported(tmp_path: Path) -> None:
    raw = raw_csv()
    y = raw["y"].astype(float)
    clean, report = run_edited(tmp_path, raw.drop(index=GAP), fill_gaps="interpolate",
                               report_dir=tmp_path / "rep")
    assert report.success, report.summary()
    assert len(clean) == 576 and report.gaps_filled == 2 and report.interpolated == 2
    step = (y[22] - y[19]) / 3
    assert clean.loc[20, "y"] == pytest.approx(y[19] + step)
    assert clean.loc[21, "y"] == pytest.approx(y[19] + 2 * step)
    assert str(clean.loc[20, "ds"].date()) == "2012-09-01"
    assert report.filled_series == [{"series": FIRST, "points": 2, "longest_run": 2,
                                     "first": "2012-09-01", "last": "2012-10-01",
                                     "share": round(2 / 96, 4)}]
    text = report.summary()
    assert "Inserted 2 missing step(s)" in text
    assert (f"series {FIRST}: 2 point(s), 2.08 % of the series, longest run 2, from "
            "2012-09-01 to 2012-10-01") in text
    assert "warning" not in text
    saved = json.loads((tmp_path / "rep" / "validation.json").read_text())
    assert saved["gaps_filled"] == 2 and saved["filled_series"][0]["series"] == FIRST


@pytest.mark.parametrize(("method", "expected"), [("zero", 0.0), ("ffill", "previous")])
def test_gaps_filled_with_zero_or_the_previous_value(tmp_path: Path, method: str,
                                                     expected: object) -> None:
    raw = raw_csv()
    raw["price"] = [str(i) for i in range(len(raw))]
    clean, report = run_edited(tmp_path, raw.drop(index=GAP), fill_gaps=method,
                               past=["price"])
    assert report.success, report.summary()
    value = float(raw.loc[19, "y"]) if expected == "previous" else expected
    assert clean.loc[[20, 21], "y"].tolist() == [value, value]
    assert clean.loc[[20, 21], "price"].astype(float).tolist() == [19.0, 19.0]  # carried
    assert report.interpolated == 0 and report.gaps_filled == 2


def test_gaps_longer_than_max_gap_fail_naming_series_and_dates(tmp_path: Path) -> None:
    raw = raw_csv().drop(index=[20, 21, 22, 100])  # 3 missing in the first, 1 in the 2nd
    clean, report = run_edited(tmp_path, raw, fill_gaps="interpolate", max_gap=2)
    assert report.gaps_filled == 1  # the second series' single gap
    res = failure(report, "ds must be one `MS` step")
    assert "gaps longer than data.max_gap 2 missing steps are not filled" in res.description
    assert res.unexpected_count == 1
    assert (res.examples[0]["unique_id"], res.examples[0]["previous_ds"],
            res.examples[0]["ds"]) == (FIRST, "2012-08-01", "2012-12-01")
    assert "raise data.max_gap" in res.hint


def test_integer_steps_are_filled(tmp_path: Path) -> None:
    raw = raw_csv(M3).drop(index=[5, 6])
    clean, report = run_edited(tmp_path, raw, freq=1, fill_gaps="zero")
    assert report.success, report.summary()
    first = clean[clean["unique_id"] == clean["unique_id"].iloc[0]]
    assert first["ds"].diff().dropna().eq(1).all() and first["y"].iloc[5:7].eq(0).all()


def test_calendar_offsets_are_filled_on_their_anchor() -> None:
    ds = pd.date_range("2024-01-06", periods=10, freq="W-SAT")
    frame = pd.DataFrame({"unique_id": "a", "ds": ds.delete([3, 4, 7]), "y": 1.0,
                          "_row": np.arange(1, 8, dtype=np.int32), "_ds_invalid": False,
                          "_y_invalid": False})
    out, n = fill_gaps(sort_long_frame(frame), "W-SAT", "ffill", None)
    assert n == 3 and out["ds"].tolist() == list(ds)
    assert out[INSERTED].tolist() == [i in (3, 4, 7) for i in range(10)]
    out, n = fill_gaps(sort_long_frame(frame), "W-SAT", "zero", 1)
    assert n == 1  # only the single missing week


def test_absurd_gaps_are_refused_before_allocating() -> None:
    frame = pd.DataFrame({"unique_id": "a", "ds": pd.array([1, 2, 10**12], dtype="Int64"),
                          "y": 1.0, "_row": np.arange(1, 4, dtype=np.int32),
                          "_ds_invalid": False, "_y_invalid": False})
    with pytest.raises(DataError, match="would insert 999,999,999,997 rows") as info:
        fill_gaps(frame, 1, "zero", None)
    assert "data.max_gap" in info.value.hint


def _holed(n: int) -> pd.DataFrame:
    raw = raw_csv()
    raw.loc[30:30 + n - 1, "y"] = ""
    return raw


def test_long_holes_in_y_are_refused_beyond_max_gap(tmp_path: Path) -> None:
    _, report = run_edited(tmp_path, _holed(31), missing_y="interpolate", max_gap=12)
    res = failure(report, "nor holes longer than data.max_gap 12")
    assert res.unexpected_count == 31 and res.examples[0]["unique_id"] == FIRST
    assert report.interpolated == 0


def test_a_series_mostly_interpolated_gets_a_warning(tmp_path: Path) -> None:
    """Today's silent 31-value fill (a third of the series) is said, per series."""
    _, report = run_edited(tmp_path, _holed(31), missing_y="interpolate")
    assert report.success, report.summary()
    assert report.interpolated == 31
    (filled,) = report.filled_series
    assert (filled["points"], filled["longest_run"], filled["first"], filled["last"]) == (
        31, 31, "2013-07-01", "2016-01-01")
    warning = [w for w in report.warnings if "filled-in" in w]
    assert warning and f"{FIRST} (32.3 %, 31 points)" in warning[0]
    assert "warning: 1 series is more than 10 % filled-in values" in report.summary()


def test_short_holes_within_max_gap_are_interpolated_quietly(tmp_path: Path) -> None:
    _, report = run_edited(tmp_path, _holed(3), missing_y="interpolate", max_gap=3)
    assert report.success, report.summary()
    assert report.interpolated == 3 and report.warnings == []


def test_stale_series_are_a_warning_with_the_count(tmp_path: Path) -> None:
    raw = raw_csv()
    raw = raw.drop(index=range(72, 96))  # the first series ends 24 months early
    _, report = run_edited(tmp_path, raw)
    assert report.success, report.summary()
    assert report.n_stale_series == 1
    assert report.stale_series == [{"series": FIRST, "last_ds": "2016-12-01",
                                     "steps_behind": 24}]
    text = report.summary()
    assert ("warning: 1 of 6 series end more than 12 steps (the larger of features.horizon 6 "
            "and data.season_length 12) before the latest ds 2018-12-01") in text
    assert f"{FIRST} (last ds 2016-12-01, 24 steps behind)" in text
    assert report.to_dict()["n_stale_series"] == 1


def test_series_a_season_behind_are_not_stale(tmp_path: Path) -> None:
    raw = raw_csv().drop(index=range(84, 96))  # 12 steps behind: not more than 12
    _, report = run_edited(tmp_path, raw)
    assert report.n_stale_series == 0 and report.warnings == []


def test_integer_stale_series(tmp_path: Path) -> None:
    raw = raw_csv(M3)
    first = raw["unique_id"].iloc[0]
    raw = raw.drop(index=raw.index[raw["unique_id"] == first][-20:])
    _, report = run_edited(tmp_path, raw, freq=1)
    assert [(r["series"], r["steps_behind"]) for r in report.stale_series] == [(first, 20)]


def test_the_train_run_logs_filled_and_stale_counts(tmp_path: Path) -> None:
    class Tracker:
        metrics: dict = {}

        def log_metrics(self, values: dict) -> None:
            self.metrics.update(values)

        def log_dict(self, *_: object) -> None:
            pass

    raw = raw_csv().drop(index=[*range(72, 96), 100])
    clean, report = run_edited(tmp_path, raw, fill_gaps="zero")
    tracker = Tracker()
    log_train_data(tracker, make_cfg(AUS), raw, clean, report)
    assert tracker.metrics["data_series_stale"] == 1
    assert tracker.metrics["data_rows_inserted"] == 1


def test_new_keys_are_strict() -> None:
    with pytest.raises(Exception, match="data.fill_gaps"):
        parse_config({"name": "u", "data": {"path": str(M3), "freq": 1, "fill_gaps": "mean"},
                      "features": {"lookback": 12, "horizon": 6},
                      "models": [{"type": "naive"}], "evaluation": {"test_size": 6}})
    with pytest.raises(Exception, match="data.max_gap"):
        make_cfg(AUS, max_gap=0)


def test_empty_y_after_the_last_value_is_left_out_not_made_up(tmp_path: Path) -> None:
    """missing_y: interpolate fills between observed values; rows after a series' last
    value (a forecast's future rows handed to train) were filled with that last value and
    scored as the holdout (a trial: a promoted model scored on made-up flat values)."""
    raw = raw_csv()
    last = raw.index[raw["unique_id"] == FIRST][-3:]  # the first series' last 3 rows
    raw.loc[last, "y"] = ""
    raw.loc[30, "y"] = ""  # a hole inside: still interpolated
    clean, report = run_edited(tmp_path, raw, missing_y="interpolate")
    assert report.success, report.summary()
    assert report.interpolated == 1 and len(clean) == len(raw) - 3
    assert clean.groupby("unique_id")["ds"].max().nunique() == 2  # FIRST ends 3 rows early
    (warning,) = [w for w in report.warnings if "after the last observed y" in w]
    assert warning.startswith("3 row(s) after the last observed y of 1 series")


@pytest.mark.parametrize("fill", ["zero", "ffill", "interpolate"])
def test_no_gap_is_filled_after_the_last_value(tmp_path: Path, fill: str) -> None:
    """The trailing empty rows leave before fill_gaps runs: a step it inserted between two
    of them was a made-up last value (zero or ffill) that the rows before it were then
    interpolated towards (a reviewer's case)."""
    raw = raw_csv()
    last = raw.index[raw["unique_id"] == FIRST][-3:]
    raw.loc[last, "y"] = ""
    raw = raw.drop(index=last[1])  # a gap between the two trailing empty rows
    clean, report = run_edited(tmp_path, raw, missing_y="interpolate", fill_gaps=fill)
    assert report.success, report.summary()
    assert len(clean) == len(raw) - 2 and report.gaps_filled == 0
    assert report.interpolated == 0
