"""Validate stage: check a coerced long frame with one Great Expectations suite.

:func:`validate_long_frame` sorts the frame, drops short series (or flags them), optionally
interpolates missing targets, then runs one GE suite over the frame plus a few boolean
helper columns (one per per-series rule GE cannot express column-wide, and unique keys:
on the sorted frame a repeat is a run of equal rows, found in one pass where GE's
compound-unique expectation builds a hash table of every key). GE decides pass or fail and
counts the offending rows; the offending rows shown to the user (row number, series, ds,
y) are picked here with pandas from the same helper columns.

Great Expectations is imported lazily, inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.schema import (
    DS,
    DS_INVALID,
    DS_TEXT,
    FLAG_COLUMNS,
    ID,
    ROW,
    Y_INVALID,
    Y_TEXT,
    Y,
    is_integer_time,
    on_grid,
    release_arrow_memory,
    row_numbers,
    same_as_previous,
    sort_long_frame,
)
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.ingest import check_covariate_columns

MAX_EXAMPLES = 5
REPORT_FILE = "validation.json"
QUARANTINE_FILE = "quarantine.csv"
DOCS_DIR = "data_docs"
DOCS_SITE = "deepcast"

# Helper columns handed to GE next to unique_id / ds (each expected to be in {True}).
DS_PARSEABLE = "ds_parseable"
Y_IS_NUMBER = "y_is_number"
Y_IS_FINITE = "y_is_finite"
Y_PRESENT = "y_present"
DS_INCREASING = "ds_increasing_within_series"
DS_ON_GRID = "ds_on_freq_grid"
LONG_ENOUGH = "series_long_enough"
KEY_UNIQUE = "key_unique"
_SUITE_LOCK = threading.Lock()  # GE suites of the threads of one process, one at a time


@dataclass
class ExpectationResult:
    """Outcome of one expectation of the suite, with the rows that broke it."""

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int
    description: str
    hint: str
    examples: list[dict] = field(default_factory=list)


@dataclass
class ValidationReport:
    """Everything validation found, as data (``to_dict``) and as text (``summary``)."""

    success: bool
    source: str
    n_rows: int
    n_series: int
    results: list[ExpectationResult]
    dropped_series: dict[str, int]
    interpolated: int
    report_path: str | None = None
    docs_path: str | None = None
    notes: list[str] = field(default_factory=list)
    quarantined: int = 0  # rows moved aside under data.bad_rows: quarantine
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None

    def failures(self) -> list[ExpectationResult]:
        """The expectations that failed, in suite order."""
        return [r for r in self.results if not r.success]

    def summary(self) -> str:
        """Human-readable multi-line summary: verdict, failed checks with rows, hints."""
        failed = self.failures()
        verdict = "PASSED" if self.success else "FAILED"
        checks = (
            f"all {len(self.results)} checks passed"
            if not failed
            else f"{len(failed)} of {len(self.results)} checks failed"
        )
        lines = [
            f"Validation of {self.source}: {verdict} - {self.n_rows} rows, "
            f"{self.n_series} series, {checks}."
        ]
        if self.dropped_series:
            shown = ", ".join(
                f"{k} ({v} row{'' if v == 1 else 's'})"
                for k, v in list(self.dropped_series.items())[:10]
            )
            more = len(self.dropped_series) - 10
            lines.append(
                f"Dropped {len(self.dropped_series)} series too short to train and score: "
                f"{shown}{f' and {more} more' if more > 0 else ''}."
            )
        if self.quarantined:
            reasons = "; ".join(f"{k}: {v}" for k, v in self.quarantine_reasons.items())
            where = self.quarantine_path or "not written: no report folder"
            lines.append(f"Quarantined {self.quarantined} row(s) ({reasons}): {where}.")
        if self.interpolated:
            lines.append(
                f"Interpolated {self.interpolated} missing y value(s) within their series."
            )
        for res in failed:
            lines.append("")
            unit = "series" if any("length" in ex for ex in res.examples) else "row(s)"
            count = f" - {res.unexpected_count} {unit}" if res.unexpected_count else ""
            lines.append(f"FAILED: {res.description}{count} [{res.expectation}]")
            for ex in res.examples:
                lines.append("    " + _format_example(ex))
            if res.unexpected_count > len(res.examples) and res.examples:
                lines.append(f"    ... and {res.unexpected_count - len(res.examples)} more")
            lines.append(f"  fix: {res.hint}")
        for note in self.notes:
            lines.append(f"note: {note}")
        if self.report_path:
            lines.append(f"Full report: {self.report_path}")
        if self.docs_path:
            lines.append(f"Data Docs: {self.docs_path}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain JSON-able data."""
        return asdict(self)


@dataclass
class _Check:
    """One expectation of the suite, with what a user needs to read its outcome."""

    key: str
    build: Callable[[Any], Any]  # gx.expectations module -> Expectation
    column: str | None
    description: str
    hint: str
    # per row: True where the row breaks this check (for examples); a callable is only
    # evaluated when the check fails, so passing runs hold no extra row masks
    bad: np.ndarray | Callable[[], np.ndarray]
    extra: Callable[[np.ndarray], list[dict]] | None = None  # custom examples


def validate_long_frame(
    df: pd.DataFrame,
    cfg: PipelineConfig,
    report_dir: str | Path | None = None,
    min_length: int | None = None,
    data_docs: bool | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Validate a coerced long frame; return (clean canonical frame, report).

    ``min_length`` overrides the shortest allowed series (default: lookback + horizon +
    test_size, what training needs; forecasting needs only the model's lookback).
    ``data_docs`` builds the GE Data Docs HTML beside ``validation.json`` (None: when
    validation fails, or always under ``data.data_docs: always``).

    The frame is sorted by (unique_id, ds) first. Data problems never raise: they make
    ``report.success`` False (the frame is still returned, sorted). :class:`DataError` is
    raised only when Great Expectations itself cannot run. ``n_rows`` / ``n_series`` count
    the returned frame (after short series were dropped).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    data = cfg.data
    min_len = min_length or cfg.min_length
    source = str(df.attrs.get("source") or data.path or "data")

    check_covariate_columns(df.columns, data, source)
    frame = _prepare(df)
    frame = sort_long_frame(frame)
    rejected = None
    if data.bad_rows == "quarantine":
        frame, rejected = _quarantine(frame)

    dropped: dict[str, int] = {}
    n_input_series = int(frame[ID].nunique())
    if data.short_series in ("drop", "pad"):
        frame, dropped = _drop_short(frame, min_len)

    interpolated = 0
    if data.missing_y == "interpolate":
        frame, interpolated = _interpolate(frame)

    checks, check_frame = _build_checks(frame, cfg, dropped, n_input_series, min_len,
                                        forecast=min_length is not None)
    suite_name = f"{cfg.name}_long_frame"
    outcome, ge_result = _run_suite(check_frame, checks, suite_name)

    results = []
    for chk in checks:
        expectation, success, count = outcome[chk.key]
        examples = [] if success else _examples(frame, chk)
        results.append(
            ExpectationResult(
                expectation=expectation,
                column=chk.column,
                success=success,
                unexpected_count=count,
                description=chk.description,
                hint=chk.hint,
                examples=examples,
            )
        )
    clean = _canonical(frame)
    report = ValidationReport(
        success=all(r.success for r in results),
        source=source,
        n_rows=len(clean),
        n_series=int(clean[ID].nunique()),
        results=results,
        dropped_series=dropped,
        interpolated=interpolated,
    )
    if rejected is not None and len(rejected):
        report.quarantined = len(rejected)
        report.quarantine_reasons = rejected["reason"].value_counts(sort=False).to_dict()
    if report_dir is not None:
        if report.quarantined:
            report.quarantine_path = _write_quarantine(rejected, Path(report_dir))
        if data_docs is None:
            data_docs = data.data_docs == "always" or not report.success
        _write_reports(report, Path(report_dir), ge_result, checks, suite_name, data_docs)
    release_arrow_memory()
    return clean, report


# --------------------------------------------------------------------------- preparation


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with the flag columns present (tolerates frames not built by coerce); shallow:
    copy-on-write keeps the caller's frame as it is without copying the data up front."""
    frame = df.copy(deep=False)
    if ROW not in frame.columns:
        frame[ROW] = row_numbers(len(frame))
    for flag in (DS_INVALID, Y_INVALID):
        if flag not in frame.columns:
            frame[flag] = False
        frame[flag] = frame[flag].fillna(False).astype(bool)
    if frame[Y].dtype != np.float64:  # (a float64 column is kept: no 80 MB copy at 10M rows)
        frame[Y] = pd.to_numeric(frame[Y], errors="coerce").astype("float64")
    return frame


def _quarantine(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off the rows that cannot be used (``data.bad_rows: quarantine``): empty or
    unparseable keys and repeated (unique_id, ds) (the first row is kept) leave the frame;
    a row with a non-numeric or infinite y stays in place with y missing (removing it
    would open a gap), so ``data.missing_y`` decides. Returns (frame, rejected rows with
    a ``reason``); ``frame`` is sorted like its input."""
    ids, ds = frame[ID], frame[DS]
    reason = pd.Series(pd.NA, index=frame.index, dtype="str")
    reason = reason.mask(ds.isna(), "ds is empty")
    reason = reason.mask(frame[DS_INVALID], "ds does not parse")
    reason = reason.mask(ids.isna(), "unique_id is empty")
    keyed = reason.isna()
    dup = keyed & frame[[ID, DS]].duplicated(keep="first")
    reason = reason.mask(dup, "duplicate (unique_id, ds)")
    leaves = reason.notna()
    bad_y = ~leaves & (frame[Y_INVALID] | np.isinf(frame[Y].to_numpy(dtype="float64")))
    reason = reason.mask(bad_y & frame[Y_INVALID], "y is not a number")
    reason = reason.mask(bad_y & ~frame[Y_INVALID], "y is not finite")
    kept_row = frame[ROW].where(keyed).groupby([ids, ds], sort=False).transform("first")
    rejected = frame[reason.notna()].assign(reason=reason[reason.notna()],
                                            kept_row=kept_row.where(dup).astype("Int64"))
    kept = frame[~leaves].copy()
    kept.loc[bad_y[~leaves], Y] = np.nan
    kept[Y_INVALID] = False
    return kept.reset_index(drop=True), rejected


def _write_quarantine(rejected: pd.DataFrame, report_dir: Path) -> str:
    """The rejected rows as the source had them (row number, values, reason), atomically."""
    out = rejected.sort_values(ROW, kind="stable").rename(columns={ROW: "row"})
    if DS_TEXT in out.columns:
        out[DS] = out[DS].astype("object").where(out[DS_TEXT].isna(), out[DS_TEXT])
    if Y_TEXT in out.columns:
        out[Y] = out[Y].astype("object").where(out[Y_TEXT].isna(), out[Y_TEXT])
    keep = ["row", ID, DS, Y, *[c for c in out.columns if c not in (
        "row", ID, DS, Y, "reason", "kept_row", *FLAG_COLUMNS)], "reason", "kept_row"]
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / QUARANTINE_FILE
    _write_text(path, out[keep].to_csv(index=False))
    return str(path)


def _runs(same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row, length) of each run of same-series rows (the frame is sorted by id)."""
    starts = np.flatnonzero(~same)
    return starts, np.diff(np.append(starts, len(same)))


def _drop_short(frame: pd.DataFrame, min_len: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Remove series shorter than ``min_len`` (rows with a null id are kept, to be reported)."""
    counts = frame[ID].value_counts()
    short = counts[counts < min_len].sort_index()
    if short.empty:
        return frame, {}
    keep = ~frame[ID].isin(short.index)
    out = frame.loc[keep].reset_index(drop=True)
    return out, {str(k): int(v) for k, v in short.items()}


def _interpolate(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Fill missing (not unparseable) y linearly within each series; edges by nearest value."""
    y = frame[Y]
    ids = frame[ID]
    missing = (y.isna() & ~frame[Y_INVALID] & ids.notna()).to_numpy()
    if not missing.any():
        return frame, 0
    finite = np.isfinite(y.to_numpy())
    pos = pd.Series(np.arange(len(frame), dtype="float64"), index=frame.index)
    anchor_pos = pos.where(finite)
    anchor_val = y.where(finite)
    groups_pos = anchor_pos.groupby(ids, sort=False)
    groups_val = anchor_val.groupby(ids, sort=False)
    prev_pos, next_pos = groups_pos.ffill(), groups_pos.bfill()
    prev_val, next_val = groups_val.ffill(), groups_val.bfill()
    with np.errstate(invalid="ignore", divide="ignore"):
        between = prev_val + (next_val - prev_val) * (pos - prev_pos) / (next_pos - prev_pos)
    fill = between.where(prev_pos.notna() & next_pos.notna(), prev_val.fillna(next_val))
    filled = y.mask(missing, fill)
    frame = frame.copy()
    frame[Y] = filled.astype("float64")
    return frame, int((missing & filled.notna().to_numpy()).sum())


# --------------------------------------------------------------------------- the suite


def _fmt_freq(freq: str | int) -> str:
    return f"`{freq}`"


def _freq_hint(frame: pd.DataFrame, freq: str | int) -> str:
    """'; the dates look like `W-SAT` ...' when pandas infers another frequency from the
    longest series (a weekly series on Saturdays is not `W`, which means Sundays)."""
    if not pd.api.types.is_datetime64_any_dtype(frame[DS]) or frame.empty:
        return ""
    longest = frame.groupby(ID, sort=False).size().idxmax()
    ds = frame.loc[frame[ID] == longest, DS].dropna().drop_duplicates().sort_values()
    guesses = []
    for i in range(0, max(min(len(ds), 400) - 2, 0), 8):  # stretches between gaps
        try:
            guesses.append(pd.infer_freq(ds.iloc[i : i + 8]))
        except (TypeError, ValueError):
            continue
    guesses = [g for g in guesses if g]
    guess = max(set(guesses), key=guesses.count) if guesses else None
    if not guess or guess == str(freq):
        return ""
    return f"; series {longest}'s dates look like {_fmt_freq(guess)} (data.freq: {guess})"


def _build_checks(
    frame: pd.DataFrame,
    cfg: PipelineConfig,
    dropped: dict[str, int],
    n_input_series: int,
    min_len: int,
    forecast: bool = False,
) -> tuple[list[_Check], pd.DataFrame]:
    """The suite's checks and the frame GE validates (keys, row numbers, helper columns)."""
    data = cfg.data
    freq = data.freq
    integer = is_integer_time(freq)
    ids, ds, y = frame[ID], frame[DS], frame[Y]
    y_np = y.to_numpy(dtype="float64")
    ds_na = ds.isna().to_numpy()
    id_na = ids.isna().to_numpy()
    ds_invalid = frame[DS_INVALID].to_numpy(dtype=bool)
    y_invalid = frame[Y_INVALID].to_numpy(dtype=bool)
    same = same_as_previous(ids)

    increasing = (ds > ds.shift()).to_numpy(dtype=bool, na_value=False)
    inc_ok = ~same | ds_na | increasing
    dup_of_prev = same & (ds == ds.shift()).to_numpy(dtype=bool, na_value=False)
    grid_ok = on_grid(ds, ids, freq) | ds_na | dup_of_prev | id_na
    starts, lengths = _runs(same)
    short_first = np.zeros(len(frame), dtype=bool)  # the first row of each short series
    short_first[starts[lengths < min_len]] = True
    short_first &= ~id_na
    keys_present = ~id_na & ~ds_na
    # every row of a repeated key (keep=False): the frame is sorted, so a repeat is a run
    # of rows equal to the previous one -- no hash table over 10M keys
    dup_rows = keys_present & (dup_of_prev | np.append(dup_of_prev[1:], False))

    # ds as GE sees it: unparseable cells are their own check, so they get a stand-in value
    # here instead of counting as empty too (a GE row_condition would copy the whole frame)
    ds_seen = ds.where(~ds_invalid, 0 if integer else pd.Timestamp(0)) if ds_invalid.any() else ds
    check = pd.DataFrame(
        {
            ID: ids,
            DS: ds_seen,
            KEY_UNIQUE: ~dup_rows,
            DS_PARSEABLE: ~ds_invalid,
            Y_IS_NUMBER: ~y_invalid,
            Y_IS_FINITE: ~np.isinf(y_np),
            Y_PRESENT: ~np.isnan(y_np) | y_invalid,
            DS_INCREASING: inc_ok,
            DS_ON_GRID: grid_ok,
            LONG_ENOUGH: ~short_first,
        },
        copy=False,  # no consolidated copy of the helper columns (80 MB at 10M rows)
    )

    def in_true(col: str, desc: str) -> Callable[[Any], Any]:
        return lambda gxe: gxe.ExpectColumnValuesToBeInSet(
            column=col, value_set=[True], description=desc
        )

    kind = "an integer step" if integer else "a timestamp"
    parse_hint = (
        "write ds as whole numbers (1, 2, 3, ...) or set data.freq to a pandas alias "
        "if ds holds dates"
        if integer
        else "write ds in one format for the whole column, ISO 8601 preferred "
        "(2024-01-31 or 2024-01-31T13:00:00)"
    )
    interp = data.missing_y == "interpolate"
    missing_desc = (
        "y must have at least one value in each series (missing values are interpolated, "
        "but not in a series with no value at all)"
        if interp
        else "y must not be missing"
    )
    missing_hint = (
        "remove series that have no y values at all"
        if interp
        else "fill in the missing values, or set data.missing_y: interpolate to fill them "
        "linearly within each series"
    )
    if forecast:
        geometry = f"{min_len} point(s) of history, needed to forecast"
    elif data.short_series == "pad":
        geometry = (f"features.horizon {cfg.features.horizon} + training.val_size "
                    f"{cfg.val_size} + evaluation.test_size {cfg.evaluation.test_size} + 1, "
                    "with short series padded")
    else:
        geometry = (f"features.lookback {cfg.features.lookback} + features.horizon "
                    f"{cfg.features.horizon} + training.val_size {cfg.val_size} + "
                    f"evaluation.test_size {cfg.evaluation.test_size}")
    if dropped and not len(frame):
        empty_desc = (
            f"no series is left to forecast: all {n_input_series} series have fewer than "
            f"{min_len} rows ({geometry}) and were dropped"
        )
    else:
        empty_desc = "the data must contain at least one row"
    checks = [
        _Check(
            "id_not_null",
            lambda gxe: gxe.ExpectColumnValuesToNotBeNull(
                column=ID, description="unique_id must not be empty"
            ),
            ID,
            "unique_id must not be empty",
            "fill in the series identifier in these rows (or remove the rows)",
            id_na,
        ),
        _Check(
            "ds_not_null",
            lambda gxe: gxe.ExpectColumnValuesToNotBeNull(
                column=DS, description="ds must not be empty"
            ),
            DS,
            "ds must not be empty",
            "fill in the time of these rows (or remove the rows)",
            lambda: ds_na & ~ds_invalid,
        ),
        _Check(
            "ds_parseable",
            in_true(DS_PARSEABLE, f"ds must parse as {kind}"),
            DS,
            f"ds could not be parsed as {kind}",
            parse_hint,
            ds_invalid,
        ),
        _Check(
            "y_numeric",
            in_true(Y_IS_NUMBER, "y must be a number"),
            Y,
            "y must be a number (these cells hold text)",
            "fix the non-numeric cells (use '.' as decimal separator, no thousands separators "
            "or units) or leave them empty",
            y_invalid,
        ),
        _Check(
            "y_finite",
            in_true(Y_IS_FINITE, "y must be finite (not inf or -inf)"),
            Y,
            "y must be finite (not inf or -inf)",
            "replace the infinite values with real measurements (or leave them empty)",
            lambda: np.isinf(y_np),
        ),
        _Check(
            "y_not_missing",
            in_true(Y_PRESENT, missing_desc),
            Y,
            missing_desc,
            missing_hint,
            lambda: np.isnan(y_np) & ~y_invalid,
        ),
        _Check(
            "unique_keys",
            # a flag per row instead of GE's compound-unique expectation: on the sorted frame
            # a repeat is a run of equal keys (no 10M-key hash table: 270 MB at 10M rows)
            in_true(KEY_UNIQUE, "each (unique_id, ds) pair must appear once"),
            None,
            "each (unique_id, ds) pair must appear only once",
            "remove or aggregate the duplicate rows (e.g. sum or average them) before export",
            dup_rows,
        ),
        _Check(
            "ds_increasing",
            in_true(DS_INCREASING, "ds must increase within each series"),
            DS,
            "ds must increase within each series (a repeated ds is not an increase)",
            "remove the repeated timestamps of the series",
            lambda: ~inc_ok,
        ),
        _Check(
            "ds_on_grid",
            in_true(
                DS_ON_GRID,
                f"ds must be one {_fmt_freq(freq)} step after the previous row of its series",
            ),
            DS,
            f"ds must be one {_fmt_freq(freq)} step after the previous row of its series "
            "(rows after a gap or off the grid)",
            "add the missing periods (an empty y is fine with data.missing_y: interpolate); "
            "if most rows fail, data.freq does not match the data" + _freq_hint(frame, freq),
            lambda: ~grid_ok,
            extra=lambda idx: _grid_examples(frame, idx),
        ),
        _Check(
            "series_length",
            in_true(LONG_ENOUGH, f"every series must have at least {min_len} rows"),
            ID,
            f"every series must have at least {min_len} rows ({geometry})",
            "drop short series with data.short_series: drop, or lower features.lookback, "
            "features.horizon or evaluation.test_size",
            short_first,
            extra=lambda idx: _length_examples(frame, starts, lengths, idx),
        ),
        _Check(
            "not_empty",
            lambda gxe: gxe.ExpectTableRowCountToBeBetween(min_value=1, description=empty_desc),
            None,
            empty_desc,
            "provide longer series, or lower features.lookback, features.horizon, "
            "training.val_size or evaluation.test_size"
            if dropped
            else "check that the data file has rows",
            lambda: np.zeros(len(frame), dtype=bool),
        ),
    ]
    checks += _covariate_checks(frame, cfg, check, in_true)
    return checks, check


def _covariate_checks(frame: pd.DataFrame, cfg: PipelineConfig, check: pd.DataFrame,
                      in_true: Callable[[str, str], Callable[[Any], Any]]) -> list[_Check]:
    """Per covariate column: no empty cells; numbers for past/future/numeric statics; one
    value per series for statics. Helper columns go into ``check`` for GE."""
    data = cfg.data
    categorical = set(data.categorical or [])
    kinds = ([(c, "static") for c in data.static] + [(c, "past") for c in data.past]
             + [(c, "future") for c in data.future])
    out = []
    for col, kind in kinds:
        values = frame[col]
        present = values.notna().to_numpy()
        out.append(_Check(
            f"{col}_not_null",
            lambda gxe, c=col, k=kind: gxe.ExpectColumnValuesToNotBeNull(
                column=c, description=f"{k} covariate {c} must not be empty"),
            col, f"{kind} covariate {col} must not be empty",
            f"fill in {col} for these rows (a {kind} covariate is needed at every step)",
            lambda p=present: ~p))
        check[col] = values
        numeric_wanted = kind != "static" or (data.categorical is not None
                                              and col not in categorical)
        if numeric_wanted:
            as_num = pd.to_numeric(values, errors="coerce")
            ok = (as_num.notna() | ~present).to_numpy() & ~np.isinf(
                as_num.to_numpy(dtype="float64", na_value=0.0))
            check[f"{col}__numeric"] = ok
            out.append(_Check(
                f"{col}_numeric", in_true(f"{col}__numeric", f"{col} must be a finite number"),
                col, f"{kind} covariate {col} must be a finite number",
                f"fix the non-numeric cells of {col}, or declare it under data.categorical "
                "(statics only)", lambda k=ok: ~k))
        if kind == "static":
            ids = frame[ID]
            constant = (values.groupby(ids, sort=False).transform("nunique", dropna=False)
                        .fillna(1).to_numpy() <= 1)
            check[f"{col}__constant"] = constant
            out.append(_Check(
                f"{col}_constant", in_true(f"{col}__constant",
                                           f"static {col} must be constant within a series"),
                col, f"static covariate {col} must have one value per series",
                f"make {col} constant within each series, or declare it under data.past / "
                "data.future if it changes over time", lambda k=constant: ~k))
    return out


def _new_suite(gx: Any, gxe: Any, name: str, checks: list[_Check]) -> Any:
    suite = gx.ExpectationSuite(name=name)
    for chk in checks:
        exp = chk.build(gxe)
        exp.meta = {"deepcast_check": chk.key}
        suite.add_expectation(exp)
    return suite


@contextmanager
def _no_batch_fingerprint() -> Iterator[None]:
    """Turn off GE's fingerprint of pandas batches while the suite runs.

    GE hashes every pandas batch under 1 GB (``hash_pandas_object``, index included) for a
    batch marker: at 10M rows that is 5x the frame's memory and most of the suite's time,
    for a marker deepcast does not use (runs log their own data hash). The setting is put
    back afterwards, so other GE users in the process keep it (suites run one at a time,
    under ``_SUITE_LOCK``, so none restores it while another runs).
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


def _run_suite(
    check: pd.DataFrame, checks: list[_Check], suite_name: str
) -> tuple[dict[str, tuple[str, bool, int]], Any]:
    """Run the suite on an ephemeral context.

    Returns ({check key: (expectation type, success, unexpected_count)}, GE suite result).
    GE keeps one process-wide current context, so suites of several threads (a fan-out in
    threads, a server validating in parallel) take turns instead of sharing it.
    """
    with _SUITE_LOCK:
        return _run_suite_locked(check, checks, suite_name)


def _run_suite_locked(
    check: pd.DataFrame, checks: list[_Check], suite_name: str
) -> tuple[dict[str, tuple[str, bool, int]], Any]:
    try:
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        for name in ("great_expectations", "great_expectations.data_context.types.base"):
            logging.getLogger(name).setLevel(logging.WARNING)  # GE pins the second to INFO

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch = (
            context.data_sources.add_pandas("deepcast")
            .add_dataframe_asset("long_frame")
            .add_batch_definition_whole_dataframe("whole")
        )
        suite = context.suites.add(_new_suite(gx, gxe, suite_name, checks))
        vdef = context.validation_definitions.add(
            gx.ValidationDefinition(data=batch, suite=suite, name=suite_name)
        )
        with _no_batch_fingerprint():
            result = vdef.run(
                batch_parameters={"dataframe": check},
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": MAX_EXAMPLES,
                },
            )
        # GE keeps the last context as its current project, and with it the frame and every
        # metric computed on it (17 row masks at 10M rows: 250 MB) until the next context
        context.data_sources.delete("deepcast")
        del vdef, batch, suite, context
        gc.collect()  # GE's objects hold them in reference cycles: free them now, not later
    except Exception as exc:  # GE could not run at all: not a data problem
        raise DataError(
            f"Great Expectations could not run the validation suite: "
            f"{type(exc).__name__}: {exc}",
            hint="check the great-expectations installation (great-expectations==1.24.1)",
        ) from exc
    outcome: dict[str, tuple[str, bool, int]] = {}
    for evr in result.results:
        key = (evr.expectation_config.meta or {}).get("deepcast_check")
        info = evr.exception_info or {}
        if info.get("raised_exception"):
            raise DataError(
                f"Great Expectations failed on {evr.expectation_config.type}: "
                f"{info.get('exception_message')}",
                hint="this is a bug in deepcast's validation suite; please report it",
            )
        count = (evr.result or {}).get("unexpected_count")
        outcome[key] = (evr.expectation_config.type, bool(evr.success), int(count or 0))
    missing = [c.key for c in checks if c.key not in outcome]
    if missing:
        raise DataError(f"Great Expectations returned no result for checks {missing}")
    return outcome, result


# --------------------------------------------------------------------------- examples


def _format_ds(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat(" ")
    return str(int(value))


def _format_y(value: Any) -> float | str | None:
    if value is None or pd.isna(value):
        return None
    value = float(value)
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _row_example(frame: pd.DataFrame, i: int) -> dict:
    uid = frame[ID].iat[i]
    ex = {
        "row": int(frame[ROW].iat[i]),
        "unique_id": None if pd.isna(uid) else str(uid),
        "ds": _format_ds(frame[DS].iat[i]),
        "y": _format_y(frame[Y].iat[i]),
    }
    if frame[DS_INVALID].iat[i]:
        ex["ds_invalid"] = True
    if frame[Y_INVALID].iat[i]:
        ex["y_invalid"] = True
    return ex


def _examples(frame: pd.DataFrame, chk: _Check) -> list[dict]:
    bad = chk.bad() if callable(chk.bad) else chk.bad
    idx = np.flatnonzero(bad)[:MAX_EXAMPLES]
    if chk.extra is not None:
        return chk.extra(idx)
    return [_row_example(frame, int(i)) for i in idx]


def _grid_examples(frame: pd.DataFrame, idx: np.ndarray) -> list[dict]:
    out = []
    for i in idx:
        ex = _row_example(frame, int(i))
        ex["previous_ds"] = _format_ds(frame[DS].iat[int(i) - 1]) if i > 0 else None
        out.append(ex)
    return out


def _length_examples(frame: pd.DataFrame, starts: np.ndarray, lengths: np.ndarray,
                     idx: np.ndarray) -> list[dict]:
    out = []
    for i in idx:
        ex = _row_example(frame, int(i))
        ex["length"] = int(lengths[np.searchsorted(starts, i, side="right") - 1])
        out.append(ex)
    return out


def _format_example(ex: dict) -> str:
    parts = [f"row {ex.get('row')}", f"series {ex.get('unique_id') or '(empty)'}"]
    ds_empty = "(unparseable)" if ex.get("ds_invalid") else "(empty)"
    parts.append(f"ds {ex.get('ds') or ds_empty}")
    if "previous_ds" in ex:
        parts.append(f"previous ds {ex['previous_ds'] or '(empty)'}")
    y = ex.get("y")
    y_empty = "(not a number)" if ex.get("y_invalid") else "(empty)"
    parts.append(f"y {y_empty if y is None else y}")
    if "length" in ex:
        parts.append(f"length {ex['length']}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- output


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop flags, type the canonical columns, fresh RangeIndex (order kept)."""
    out = frame.drop(columns=[c for c in FLAG_COLUMNS if c in frame.columns])
    out[ID] = out[ID].astype("str")
    if isinstance(out[DS].dtype, pd.Int64Dtype) and not out[DS].isna().any():
        out[DS] = out[DS].astype("int64")
    out[Y] = out[Y].astype("float64")
    rest = [c for c in out.columns if c not in (ID, DS, Y)]
    return out[[ID, DS, Y, *rest]].reset_index(drop=True)


def _write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temp file in the same folder + os.replace)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, payload: dict) -> None:
    _write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def _write_reports(
    report: ValidationReport,
    report_dir: Path,
    result: Any,
    checks: list[_Check],
    suite_name: str,
    data_docs: bool = True,
) -> None:
    """validation.json, plus GE Data Docs under ``report_dir`` when ``data_docs`` (docs
    failures are noted, never fatal)."""
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    if data_docs:
        try:
            report.docs_path = _build_data_docs(report_dir, result, checks, suite_name)
        except Exception as exc:  # Data Docs are a bonus: never lose the JSON for them
            report.notes.append(f"Data Docs could not be built: {type(exc).__name__}: {exc}")
    path = report_dir / REPORT_FILE
    report.report_path = str(path)
    _write_json(path, report.to_dict())


def _build_data_docs(report_dir: Path, result: Any, checks: list[_Check], suite_name: str) -> str:
    """Store the run's result in a file context rooted in ``report_dir``; build the HTML."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    if result is None:
        raise RuntimeError("no validation result to render")
    context = gx.get_context(mode="file", project_root_dir=str(report_dir))
    docs_dir = report_dir / DOCS_DIR
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    sites = context.variables.data_docs_sites or {}
    if DOCS_SITE in sites:
        context.update_data_docs_site(DOCS_SITE, site)
    else:
        context.add_data_docs_site(DOCS_SITE, site)
    for other in [s for s in sites if s != DOCS_SITE]:
        context.delete_data_docs_site(other)
    context.suites.add_or_update(_new_suite(gx, gxe, suite_name, checks))
    suite_id = ExpectationSuiteIdentifier(name=suite_name)
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id,
        run_id=result.meta["run_id"],
        batch_identifier="long_frame",
    )
    context.validation_results_store.store_validation_results(
        suite_validation_result=result,
        suite_validation_result_identifier=result_id,
        expectation_suite_identifier=suite_id,
    )
    context.build_data_docs(site_names=[DOCS_SITE])
    index = docs_dir / "index.html"
    if not index.is_file():
        raise RuntimeError(f"GE did not write {index}")
    return str(index)


def report_dir_for(cfg: PipelineConfig, report_dir: str | Path | None = None) -> Path:
    """Where a validation report goes: ``report_dir`` or ./mlruns/validation/NAME/STAMP."""
    if report_dir:
        return Path(report_dir)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return Path.cwd() / "mlruns" / "validation" / cfg.name / stamp
