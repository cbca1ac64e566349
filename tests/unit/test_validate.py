"""Tests for deepcast.pipelines.validate on the real fixture files (and edited copies of them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import DataError
from deepcast.features.schema import FLAG_COLUMNS
from deepcast.pipelines.config import PipelineConfig, parse_config
from deepcast.pipelines.ingest import ingest
from deepcast.pipelines.validate import ExpectationResult, ValidationReport, validate_long_frame

DATA = Path(__file__).resolve().parents[1] / "data"
AUS = DATA / "aus_retail_small.csv"  # 6 monthly series x 96 rows, datetime ds, freq MS
M3 = DATA / "m3_monthly_small.csv"  # 12 series x 68 rows, integer ds, freq 1
GRID_CHECK = "ds must be one"


def make_cfg(path: Path, freq: str | int = "MS", **data: object) -> PipelineConfig:
    """lookback 12 + horizon 6 + val_size 6 + test_size 6: min_series_length 30; with
    short_series: pad, min_padded_length 6 + 6 + 6 + 1 = 19."""
    return parse_config(
        {
            "name": "unit",
            "data": {"path": str(path), "freq": freq, "season_length": 12, **data},
            "features": {"lookback": 12, "horizon": 6},
            "models": [{"type": "naive"}],
            "evaluation": {"test_size": 6},
        }
    )


def raw_csv(path: Path = AUS) -> pd.DataFrame:
    """The fixture as text cells, so edits round-trip exactly."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def run_edited(
    tmp_path: Path, raw: pd.DataFrame, freq: str | int = "MS", report_dir: Path | None = None,
    **data: object,
) -> tuple[pd.DataFrame, ValidationReport]:
    path = tmp_path / "edited.csv"
    raw.to_csv(path, index=False)
    cfg = make_cfg(path, freq, **data)
    return validate_long_frame(ingest(cfg.data), cfg, report_dir=report_dir)


def failure(report: ValidationReport, text: str) -> ExpectationResult:
    found = [r for r in report.failures() if text in r.description]
    assert len(found) == 1, [r.description for r in report.failures()]
    return found[0]


def rows(result: ExpectationResult) -> list[int]:
    return [ex["row"] for ex in result.examples]


# ----------------------------------------------------------------------------- clean data


def test_clean_datetime_file_passes() -> None:
    cfg = make_cfg(AUS)
    clean, report = validate_long_frame(ingest(cfg.data), cfg)
    assert report.success, report.summary()
    assert report.failures() == []
    assert (report.n_rows, report.n_series) == (576, 6)
    assert report.dropped_series == {} and report.interpolated == 0
    assert report.source == str(AUS)
    assert all(r.unexpected_count == 0 and r.examples == [] for r in report.results)
    assert {r.expectation for r in report.results} >= {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
    }
    assert list(clean.columns) == ["unique_id", "ds", "y"]
    assert not set(FLAG_COLUMNS) & set(clean.columns)
    assert clean["unique_id"].dtype == "str"
    assert clean["ds"].dtype == np.dtype("datetime64[us]")
    assert clean["y"].dtype == np.float64
    assert isinstance(clean.index, pd.RangeIndex)
    assert clean.equals(clean.sort_values(["unique_id", "ds"]).reset_index(drop=True))
    assert "PASSED" in report.summary()
    json.dumps(report.to_dict())


def test_clean_integer_file_passes() -> None:
    cfg = make_cfg(M3, freq=1)
    clean, report = validate_long_frame(ingest(cfg.data), cfg)
    assert report.success, report.summary()
    assert (report.n_rows, report.n_series) == (816, 12)
    assert clean["ds"].dtype == np.int64
    assert clean.groupby("unique_id")["ds"].diff().dropna().eq(1).all()


def test_unsorted_rows_are_accepted_and_returned_sorted(tmp_path: Path) -> None:
    cfg = make_cfg(AUS)
    expected, _ = validate_long_frame(ingest(cfg.data), cfg)
    shuffled = raw_csv().sample(frac=1.0, random_state=7)
    clean, report = run_edited(tmp_path, shuffled)
    assert report.success, report.summary()
    pd.testing.assert_frame_equal(clean, expected)


def test_declared_covariates_are_kept_undeclared_columns_not_read(tmp_path: Path) -> None:
    raw = raw_csv(M3)
    raw["promo"] = np.arange(len(raw)) % 2
    raw["note"] = "not declared"
    clean, report = run_edited(tmp_path, raw, freq=1, past=["promo"])
    assert report.success, report.summary()
    assert list(clean.columns) == ["unique_id", "ds", "y", "promo"]


# ----------------------------------------------------------------------------- failures


def test_duplicate_key_fails_naming_rows(tmp_path: Path) -> None:
    raw = raw_csv()
    raw = pd.concat([raw, raw.iloc[[10]]], ignore_index=True)  # data row 11, again at 577
    clean, report = run_edited(tmp_path, raw)
    assert not report.success
    dup = failure(report, "pair must appear only once")
    assert dup.expectation == "expect_column_values_to_be_in_set"
    assert dup.unexpected_count == 2
    assert rows(dup) == [11, 577]
    assert {ex["unique_id"] for ex in dup.examples} == {raw.loc[10, "unique_id"]}
    assert len(clean) == 577  # still returned, sorted
    assert clean.equals(clean.sort_values(["unique_id", "ds"]).reset_index(drop=True))


def test_gap_fails_frequency_check(tmp_path: Path) -> None:
    raw = raw_csv().drop(index=[19, 20])  # 2012-08 and 2012-09 of the first series
    _, report = run_edited(tmp_path, raw)
    assert not report.success
    grid = failure(report, GRID_CHECK)
    assert "`MS`" in grid.description
    assert grid.column == "ds"
    assert grid.unexpected_count == 1
    (ex,) = grid.examples
    # row numbers are those of the edited file: 2012-10-01 is now data row 20
    assert ex["row"] == 20 and ex["ds"] == "2012-10-01" and ex["previous_ds"] == "2012-07-01"
    assert [r.description for r in report.failures()] == [grid.description]


def test_wrong_freq_fails_most_rows() -> None:
    cfg = make_cfg(M3, freq=2)
    _, report = validate_long_frame(ingest(cfg.data), cfg)
    grid = failure(report, GRID_CHECK)
    assert grid.unexpected_count == 816 - 12
    assert len(grid.examples) == 5


def test_missing_y_fails_by_default(tmp_path: Path) -> None:
    raw = raw_csv()
    raw.loc[[4, 100], "y"] = ""
    _, report = run_edited(tmp_path, raw)
    assert not report.success
    miss = failure(report, "y must not be missing")
    assert miss.unexpected_count == 2
    assert rows(miss) == [5, 101]
    assert miss.examples[0]["y"] is None
    assert "interpolate" in miss.hint


def test_missing_y_is_interpolated(tmp_path: Path) -> None:
    raw = raw_csv()
    y = raw["y"].astype(float)
    raw.loc[[4, 5], "y"] = ""  # inside the first series
    raw.loc[96, "y"] = ""  # first row of the second series: nearest value
    clean, report = run_edited(tmp_path, raw, missing_y="interpolate")
    assert report.success, report.summary()
    assert report.interpolated == 3
    step = (y[6] - y[3]) / 3
    assert clean.loc[4, "y"] == pytest.approx(y[3] + step)
    assert clean.loc[5, "y"] == pytest.approx(y[3] + 2 * step)
    assert clean.loc[96, "y"] == pytest.approx(y[97])
    assert "Interpolated 3" in report.summary()


def test_all_missing_series_still_fails_with_interpolate(tmp_path: Path) -> None:
    raw = raw_csv()
    raw.loc[raw["unique_id"] == raw.loc[0, "unique_id"], "y"] = ""
    _, report = run_edited(tmp_path, raw, missing_y="interpolate")
    assert not report.success
    miss = failure(report, "at least one value")
    assert miss.unexpected_count == 96
    assert report.interpolated == 0


def test_infinite_y_fails(tmp_path: Path) -> None:
    raw = raw_csv(M3)
    raw.loc[7, "y"] = "inf"
    raw.loc[8, "y"] = "-inf"
    _, report = run_edited(tmp_path, raw, freq=1)
    inf = failure(report, "finite")
    assert inf.unexpected_count == 2
    assert rows(inf) == [8, 9]
    assert [ex["y"] for ex in inf.examples] == ["inf", "-inf"]
    json.dumps(report.to_dict(), allow_nan=False)


def test_non_numeric_y_fails_with_row_number(tmp_path: Path) -> None:
    raw = raw_csv()
    raw.loc[41, "y"] = "12,5 kg"  # ("n/a", "NA", "null" are read as missing by ingest)
    _, report = run_edited(tmp_path, raw, missing_y="interpolate")
    assert not report.success
    bad = failure(report, "y must be a number")
    assert bad.unexpected_count == 1
    (ex,) = bad.examples
    assert ex["row"] == 42 and ex["y"] is None and ex["y_invalid"] is True
    assert report.interpolated == 0  # text cells are reported, never filled
    assert "row 42" in report.summary() and "not a number" in report.summary()


def test_unparseable_and_missing_ds_are_reported_distinctly(tmp_path: Path) -> None:
    raw = raw_csv(M3)
    raw.loc[2, "ds"] = "three"
    raw.loc[70, "ds"] = ""
    _, report = run_edited(tmp_path, raw, freq=1)
    parse = failure(report, "could not be parsed as an integer step")
    assert parse.unexpected_count == 1 and rows(parse) == [3]
    empty = failure(report, "ds must not be empty")
    assert empty.unexpected_count == 1 and rows(empty) == [71]


def test_unparseable_and_missing_datetimes_are_reported_distinctly(tmp_path: Path) -> None:
    raw = raw_csv()
    raw.loc[4, "ds"] = "someday"
    raw.loc[150, "ds"] = ""
    _, report = run_edited(tmp_path, raw)
    parse = failure(report, "could not be parsed as a timestamp")
    assert parse.unexpected_count == 1 and rows(parse) == [5]
    empty = failure(report, "ds must not be empty")
    assert empty.unexpected_count == 1 and rows(empty) == [151]


def test_suite_runs_without_ge_fingerprint_and_keeps_no_data(monkeypatch) -> None:
    """GE's batch fingerprint (a hash of the whole frame) is off while deepcast's suite runs
    and back afterwards; GE's current context keeps no reference to the frame."""
    from great_expectations.data_context.data_context.context_factory import project_manager
    from great_expectations.execution_engine import pandas_execution_engine as engine

    def refuse(df):
        raise AssertionError("GE hashed the batch")

    monkeypatch.setattr(engine, "hash_pandas_dataframe", refuse)
    threshold = engine.HASH_THRESHOLD
    cfg = make_cfg(AUS)
    _, report = validate_long_frame(ingest(cfg.data), cfg)
    assert report.success, report.summary()
    assert engine.HASH_THRESHOLD == threshold > 0
    assert len(project_manager.get_current_project().data_sources.all()) == 0


def test_a_large_checked_frame_is_freed_when_its_suite_ends(monkeypatch) -> None:
    """GE's objects (suites, metric row masks) hold the checked frame in reference cycles:
    from COLLECT_FROM_BYTES on (here every frame) they are freed as the suite returns;
    below it they wait for the collector."""
    import gc

    from great_expectations.core.expectation_suite import ExpectationSuite

    from deepcast.pipelines.validation import gx

    def suites() -> int:
        return sum(type(o) is ExpectationSuite for o in gc.get_objects())

    cfg = make_cfg(AUS)
    raw = ingest(cfg.data)
    gc.collect()
    gc.disable()  # only the suite's own collection may free them
    try:
        before = suites()
        monkeypatch.setattr(gx, "COLLECT_FROM_BYTES", 0)
        assert validate_long_frame(raw, cfg)[1].success
        assert suites() == before
        monkeypatch.setattr(gx, "COLLECT_FROM_BYTES", 2**62)
        assert validate_long_frame(raw, cfg)[1].success
        assert suites() > before
    finally:
        gc.enable()


def test_suites_in_threads_restore_ge_fingerprint_setting() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from great_expectations.execution_engine import pandas_execution_engine as engine

    threshold = engine.HASH_THRESHOLD
    cfg = make_cfg(AUS)
    with ThreadPoolExecutor(3) as pool:
        reports = list(pool.map(lambda _: validate_long_frame(ingest(cfg.data), cfg)[1],
                                range(3)))
    assert all(r.success for r in reports)
    assert engine.HASH_THRESHOLD == threshold


def test_missing_unique_id_fails(tmp_path: Path) -> None:
    raw = raw_csv()
    raw.loc[200, "unique_id"] = ""
    clean, report = run_edited(tmp_path, raw)
    assert not report.success
    uid = failure(report, "unique_id must not be empty")
    assert uid.expectation == "expect_column_values_to_not_be_null"
    assert uid.unexpected_count == 1
    assert uid.examples[0]["row"] == 201 and uid.examples[0]["unique_id"] is None
    assert len(clean) == 576  # the row is kept (sorted last) so it can be reported


# ----------------------------------------------------------------------------- short series


def _shorten(raw: pd.DataFrame, sid_pos: int, keep: int) -> tuple[pd.DataFrame, str]:
    sid = raw["unique_id"].unique()[sid_pos]
    in_series = raw.index[raw["unique_id"] == sid]
    return raw.drop(index=in_series[keep:]), sid


def test_short_series_dropped_and_listed(tmp_path: Path) -> None:
    raw, sid = _shorten(raw_csv(), 2, keep=10)
    clean, report = run_edited(tmp_path, raw, short_series="drop")
    assert report.success, report.summary()
    assert report.dropped_series == {sid: 10}
    assert sid not in set(clean["unique_id"])
    assert (report.n_rows, report.n_series) == (480, 5)
    assert f"{sid} (10 rows)" in report.summary()


def test_short_series_fail_under_error(tmp_path: Path) -> None:
    raw, sid = _shorten(raw_csv(), 2, keep=10)
    raw, sid2 = _shorten(raw, 4, keep=23)
    clean, report = run_edited(tmp_path, raw, short_series="error")
    assert not report.success
    short = failure(report, "at least 30 rows")
    assert short.unexpected_count == 2  # one per short series
    assert [(ex["unique_id"], ex["length"]) for ex in short.examples] == [(sid, 10), (sid2, 23)]
    assert report.dropped_series == {}
    assert len(clean) == 96 * 4 + 10 + 23


def test_all_series_dropped_fails_clearly(tmp_path: Path) -> None:
    raw = raw_csv(M3).groupby("unique_id").head(20)
    clean, report = run_edited(tmp_path, raw, freq=1, short_series="drop")
    assert not report.success
    assert len(report.dropped_series) == 12 and clean.empty
    (fail,) = report.failures()
    assert "no series is left" in fail.description and "30" in fail.description


def test_short_series_kept_under_pad_down_to_the_padded_minimum(tmp_path: Path) -> None:
    raw, sid = _shorten(raw_csv(), 2, keep=10)  # < 19: dropped even with padding
    raw, sid2 = _shorten(raw, 4, keep=23)  # < 30 but >= 19: kept, to be padded
    clean, report = run_edited(tmp_path, raw, short_series="pad")
    assert report.success, report.summary()
    assert report.dropped_series == {sid: 10}
    assert (clean["unique_id"] == sid2).sum() == 23


# ----------------------------------------------------------------------------- reports


def test_report_dir_gets_json_and_data_docs(tmp_path: Path, monkeypatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    raw = raw_csv().drop(index=[30])
    out = tmp_path / "reports" / "run1"
    _, report = run_edited(tmp_path, raw, report_dir=out)
    assert report.report_path == str(out.resolve() / "validation.json")
    assert report.docs_path == str(out.resolve() / "data_docs" / "index.html")
    assert Path(report.docs_path).is_file()
    saved = json.loads(Path(report.report_path).read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(report.to_dict()))
    assert saved["success"] is False
    pages = list((out / "data_docs" / "validations").rglob("*.html"))
    assert pages and GRID_CHECK in pages[0].read_text(encoding="utf-8")
    summary = report.summary()
    assert str(out.resolve() / "validation.json") in summary
    # a rerun into the same folder works (add_or_update), nothing lands in the cwd
    _, again = run_edited(tmp_path, raw, report_dir=out)
    assert again.docs_path == report.docs_path and again.notes == []
    assert list(cwd.iterdir()) == []
    assert not list(out.glob(".validation.*"))


def test_data_docs_failure_still_writes_json(tmp_path: Path, monkeypatch) -> None:
    import deepcast.pipelines.validate as validate
    from deepcast.pipelines.validation import gx as ge_adapter

    def boom(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(ge_adapter, "build_data_docs", boom)
    cfg = make_cfg(M3, freq=1, data_docs="always")
    _, report = validate.validate_long_frame(ingest(cfg.data), cfg, report_dir=tmp_path / "r")
    assert report.success and report.docs_path is None
    assert Path(report.report_path).is_file()
    assert "Data Docs could not be built" in report.notes[0]
    assert "disk full" in report.summary()


def test_passing_validation_skips_data_docs_unless_asked(tmp_path: Path) -> None:
    """A passing nightly run writes validation.json only; `data_docs: always` (or the
    ``data_docs=True`` of `deepcast validate`) adds the HTML."""
    cfg = make_cfg(M3, freq=1)
    _, report = validate_long_frame(ingest(cfg.data), cfg, report_dir=tmp_path / "a")
    assert report.success and report.docs_path is None
    assert Path(report.report_path).is_file() and not (tmp_path / "a" / "data_docs").exists()
    _, report = validate_long_frame(ingest(cfg.data), cfg, report_dir=tmp_path / "b",
                                    data_docs=True)
    assert Path(report.docs_path).is_file()
    cfg = make_cfg(M3, freq=1, data_docs="always")
    _, report = validate_long_frame(ingest(cfg.data), cfg, report_dir=tmp_path / "c")
    assert Path(report.docs_path).is_file()


def test_summary_names_failed_check_and_rows(tmp_path: Path) -> None:
    raw = raw_csv()
    raw = pd.concat([raw, raw.iloc[[3]]], ignore_index=True)
    raw.loc[50, "y"] = "oops"
    _, report = run_edited(tmp_path, raw)
    text = report.summary()
    assert text.startswith(f"Validation of {tmp_path / 'edited.csv'}: FAILED - 577 rows, 6 series")
    assert "FAILED: each (unique_id, ds) pair must appear only once - 2 row(s)" in text
    assert "row 4," in text and "row 577," in text and "row 51," in text
    assert "fix: remove or aggregate the duplicate rows" in text
    assert "Traceback" not in text


def test_ge_failure_raises_data_error(monkeypatch) -> None:
    import great_expectations as gx

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no context")

    monkeypatch.setattr(gx, "get_context", broken)
    cfg = make_cfg(M3, freq=1)
    with pytest.raises(DataError, match="could not run"):
        validate_long_frame(ingest(cfg.data), cfg)


def test_import_is_cheap() -> None:
    code = (
        "import sys, deepcast.pipelines.validate; "
        "assert 'great_expectations' not in sys.modules, 'GE imported at module level'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
