"""The long frame: deepcast's one interchange type for series data.

Invariants of a *canonical* long frame (asserted by :func:`assert_long_frame`):

- columns ``unique_id`` (str), ``ds`` (datetime64 without timezone, or int64) and ``y``
  (float64), plus optional covariate columns;
- no nulls in ``unique_id`` / ``ds``; ``y`` finite;
- unique ``(unique_id, ds)``; sorted by ``(unique_id, ds)``;
- every series on a regular grid of step ``freq``.

:func:`coerce_long_frame` turns a user table into that shape *without* rejecting
anything: unparseable values become nulls and are flagged, so validation can report
every problem at once (with row numbers) instead of failing on the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError

ID, DS, Y = "unique_id", "ds", "y"
ROW = "_row"  # 1-based data row number in the source, for error messages
DS_INVALID = "_ds_invalid"  # ds present but unparseable
Y_INVALID = "_y_invalid"  # y present but not a number
DS_TEXT = "_ds_text"  # the source text of unparseable ds cells (only when there are some)
Y_TEXT = "_y_text"  # the source text of non-numeric y cells (only when there are some)
AUTO = "auto"  # data.freq: the step is inferred from the data (features.frequency)
INSERTED = "_inserted"  # a row added on the grid to fill a gap (data.fill_gaps)
FLAG_COLUMNS = (ROW, DS_INVALID, Y_INVALID, DS_TEXT, Y_TEXT, INSERTED)

# The models compute in float32: a larger magnitude becomes inf there.
F32_MAX = float(np.finfo(np.float32).max)
# Dates Python's datetime and matplotlib can hold (numpy's datetime64[us] holds more, but
# plots, reports and date arithmetic on Timestamps fail outside this range).
DATE_MIN = pd.Timestamp("0001-01-01")
DATE_MAX = pd.Timestamp("9999-12-31 23:59:59.999999")


@dataclass(frozen=True)
class ColumnSpec:
    """User column names and the time axis kind, from the pipeline YAML."""

    id_col: str = ID
    time_col: str = DS
    target_col: str = Y
    freq: str | int = 1

    @property
    def integer_time(self) -> bool:
        """Integer steps (with freq ``auto``: see :func:`coerce_long_frame`)."""
        return isinstance(self.freq, int)


def is_integer_time(freq: str | int) -> bool:
    """Integer steps (M3-style) instead of calendar timestamps."""
    return isinstance(freq, int)


def coerce_long_frame(raw: pd.DataFrame, spec: ColumnSpec, source: str = "data") -> pd.DataFrame:
    """Rename the user's columns to canonical names and type them, flagging bad cells.

    Raises :class:`DataError` only when a required column is missing; value problems are
    left as nulls with flags for validation to report. With ``spec.freq`` ``auto``, ``ds``
    is read as integer steps when every value is a whole number (so dates written as
    20240131 are steps too: give data.freq for them), else as timestamps.
    """
    wanted = {spec.id_col: ID, spec.time_col: DS, spec.target_col: Y}
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        have = ", ".join(map(str, raw.columns[:20])) or "(none)"
        sep = _other_delimiter(raw.columns)
        raise DataError(
            f"{source}: missing required column(s) {missing}; the file has: {have}",
            hint=f"the file looks {sep!r}-separated: save it comma-separated" if sep else
            "rename the columns in the file or declare them in the YAML "
            "(data.id_col, data.time_col, data.target_col)",
        )
    clash = [c for c in (ID, DS, Y) if c in raw.columns and c not in wanted and wanted.get(c) != c]
    df = raw.drop(columns=clash).rename(columns=wanted)
    out = pd.DataFrame(index=df.index)
    out[ROW] = row_numbers(len(df))

    ids = df[ID]
    # ids already of the string dtype (CSV read as text, Parquet strings) are used as they
    # are: converting 10M strings makes three temporary copies of the column
    out[ID] = ids if isinstance(ids.dtype, pd.StringDtype) else \
        ids.where(ids.isna(), ids.astype(str)).astype("str")

    ds_raw = df[DS]
    integer = spec.integer_time or (spec.freq == AUTO and _whole_numbers(ds_raw))
    if integer and pd.api.types.is_integer_dtype(ds_raw.dtype):
        out[DS] = ds_raw.astype("Int64")  # whole numbers already: no float round trip
    elif integer:
        ds = pd.to_numeric(ds_raw, errors="coerce")
        non_int = ds.notna() & (ds != np.floor(ds.fillna(0)))
        ds = ds.mask(non_int)
        out[DS] = ds.astype("Int64")
    else:
        _refuse_mixed_timezones(ds_raw, out[ROW], source)
        out[DS] = _parse_datetimes(ds_raw)
    out[DS_INVALID] = ds_raw.notna().to_numpy() & out[DS].isna().to_numpy()
    if out[DS_INVALID].any():  # kept for the quarantine file and reports
        out[DS_TEXT] = ds_raw.astype("str").where(out[DS_INVALID])

    y_raw = df[Y]
    y = pd.to_numeric(y_raw, errors="coerce").astype("float64")
    out[Y] = y
    out[Y_INVALID] = y_raw.notna().to_numpy() & y.isna().to_numpy()
    if out[Y_INVALID].any():
        out[Y_TEXT] = y_raw.astype("str").where(out[Y_INVALID])

    extra = [c for c in df.columns if c not in (ID, DS, Y)]
    if extra:  # in one step: inserting 10k columns one by one was quadratic
        out = pd.concat([out, df[extra]], axis=1)
    return out


def _whole_numbers(values: pd.Series) -> bool:
    """Every present value is a whole number (integer steps under ``data.freq: auto``)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return True
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or not values.notna().any():
        return False
    if pd.api.types.is_float_dtype(values.dtype):
        present = values.dropna()
        return bool((present == np.floor(present)).all())
    text = values.dropna().astype("str").str.strip()
    return bool(text.str.fullmatch(r"[+-]?\d+").all())


_TZ_SUFFIX = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def _refuse_mixed_timezones(values: pd.Series, rows: pd.Series, source: str) -> None:
    """Timestamps with a UTC offset mixed with naive ones are ambiguous (is a naive one
    UTC or local time?): a :class:`DataError` naming one row of each kind."""
    if pd.api.types.is_datetime64_any_dtype(values) or not len(values):
        return
    text = values.astype("str").where(values.notna()).str.strip()
    aware = text.str.contains(_TZ_SUFFIX, regex=True, na=False)
    if not aware.any():
        return
    aware &= text.str.contains(r"\d[T ]\d", regex=True, na=False)  # not a date's "-01"
    naive = values.notna() & ~aware
    if aware.any() and naive.any():
        a, n = int(np.argmax(aware.to_numpy())), int(np.argmax(naive.to_numpy()))
        raise DataError(
            f"{source}: column ds mixes timezone-aware timestamps (e.g. row {rows.iat[a]}: "
            f"{text.iat[a]}) with naive ones (e.g. row {rows.iat[n]}: {text.iat[n]}); "
            f"{int(aware.sum())} aware, {int(naive.sum())} naive",
            hint="write every timestamp with its UTC offset, or every one without (in one "
            "time zone)")


def _other_delimiter(columns: pd.Index) -> str | None:
    """The delimiter of a CSV read with the wrong one: one column whose name holds it."""
    if len(columns) != 1:
        return None
    return next((sep for sep in (";", "\t", "|") if sep in str(columns[0])), None)


def _parse_datetimes(values: pd.Series) -> pd.Series:
    """Parse timestamps (ISO 8601 first, else one format inferred for the whole column).

    Timezone-aware values are converted to UTC and made naive. Cells in another format
    than the rest become NaT (flagged as unparseable), never guessed one by one.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("str").where(values.notna())
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
        if parsed.isna().all() and text.notna().any():
            try:
                parsed = pd.to_datetime(text, errors="coerce", utc=True)
            except (ValueError, TypeError):
                pass
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[us]")


def sort_long_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by (unique_id, ds), stable, with a fresh RangeIndex. A frame already in that
    order (files are usually written sorted) is checked in one pass and not copied: the
    sort of a 10M-row frame costs seconds and a full copy of the data."""
    if _in_order(df):
        return df.reset_index(drop=True)
    return df.sort_values([ID, DS], kind="stable").reset_index(drop=True)


def release_arrow_memory() -> None:
    """Hand memory freed by a data step back to the system.

    String ids live in Arrow. Its default pool (mimalloc) keeps the pages of every freed
    temporary (a file's read buffers, the shifted copy of a column); on the system pool
    (``ARROW_DEFAULT_MEMORY_POOL=system``, the CLI's default) this trims the C heap, which
    keeps freed small blocks otherwise. Measured at 10M rows: the peak above the imports is
    2.8x the data with these calls and 3.2x without. Called at the end of each data step;
    cheap when there is nothing to release.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def row_numbers(n: int) -> np.ndarray:
    """1-based data-row numbers for reports: int32 when they fit (half of 80 MB at 10M rows)."""
    return np.arange(1, n + 1, dtype=np.int32 if n < 2**31 - 1 else np.int64)


def same_as_previous(ids: pd.Series) -> np.ndarray:
    """Per row: True where the previous row has the same (non-null) id.

    Compares the column with itself shifted: Arrow-backed string ids stay in Arrow (at 10M
    rows, ``to_numpy()`` would build 10M Python strings, 600 MB).
    """
    return (ids == ids.shift()).to_numpy(dtype=bool, na_value=False)


def _in_order(df: pd.DataFrame) -> bool:
    """True when every row's (unique_id, ds) is >= the previous row's, with no nulls (the
    stable sort would then keep the order as it is)."""
    ids, ds = df[ID], df[DS]
    if len(df) < 2:
        return True
    try:
        if ids.isna().any() or ds.isna().any():
            return False
        prev_id, prev_ds = ids.shift(), ds.shift()
        ok = (ids > prev_id) | ((ids == prev_id) & (ds >= prev_ds))
        return bool(ok.iloc[1:].all())
    except TypeError:  # values that do not compare (mixed types): let the sort decide
        return False


def assert_long_frame(df: pd.DataFrame) -> None:
    """Check the canonical invariants; raise :class:`DataError` naming the first broken one."""
    for col in (ID, DS, Y):
        if col not in df.columns:
            raise DataError(f"long frame lacks column {col!r}")
    if df[ID].isna().any() or df[DS].isna().any():
        raise DataError("long frame has nulls in unique_id or ds")
    if not np.isfinite(df[Y].to_numpy(dtype="float64")).all():
        raise DataError("long frame has missing or non-finite y")
    keys = df[[ID, DS]]
    if keys.duplicated().any():
        raise DataError("long frame has duplicate (unique_id, ds) rows")
    if not _in_order(df):
        raise DataError("long frame is not sorted by (unique_id, ds)")


def future_index(last: pd.Series | np.ndarray, freq: str | int, horizon: int) -> np.ndarray:
    """Timestamps (or integer steps) of the ``horizon`` steps after each value in ``last``.

    Returns an array of shape (n_series * horizon,), series-major.
    """
    last = pd.Series(last)
    if is_integer_time(freq):
        steps = np.arange(1, horizon + 1, dtype=np.int64) * int(freq)
        return (last.to_numpy(dtype=np.int64)[:, None] + steps[None, :]).ravel()
    offset = pd.tseries.frequencies.to_offset(freq)
    if not len(last):
        return np.array([], dtype="datetime64[us]")
    # one date range per distinct end date (in a batch forecast most series end together:
    # 10,000 ranges took 2.4 s), then every series takes the row of its end date
    ends, which = np.unique(last.to_numpy().astype("datetime64[us]"), return_inverse=True)
    table = np.stack([pd.date_range(t, periods=horizon + 1, freq=offset)[1:].to_numpy()
                      .astype("datetime64[us]") for t in ends])
    return table[which.reshape(-1)].reshape(-1)


def on_grid(ds: pd.Series, ids: pd.Series, freq: str | int) -> np.ndarray:
    """Boolean per row: True where ds is one ``freq`` step after the previous row of its series.

    The first row of each series is True. ``ds`` must be sorted within series.
    """
    first = ~same_as_previous(ids)
    if is_integer_time(freq):
        diff = ds.astype("Int64").diff().to_numpy(dtype="float64", na_value=np.nan)
        ok = diff == float(freq)
    else:
        offset = pd.tseries.frequencies.to_offset(freq)
        prev = ds.shift()
        try:
            expected = prev + offset
        except (TypeError, ValueError):
            expected = pd.Series([p + offset if pd.notna(p) else pd.NaT for p in prev],
                                 index=ds.index)
        ok = (expected == ds).to_numpy()
    return first | ok
