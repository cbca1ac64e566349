"""What the pipeline can compute with, as per-row booleans for the validation rules.

Values that parse and are finite can still break a run later: a series whose forecast dates
(last ds + horizon steps) fall after 9999-12-31 cannot be plotted or stepped through with
Timestamps, an integer step past the int64 range wraps around, a value beyond float32 is
inf inside the models, and a lookback longer than every series allocates windows of
padding only (lookback 1e12 asked numpy for 36 TiB). Each function here finds the rows
that say so, in vectorised passes over the sorted frame (loops only over series, and only
on an overflow).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepcast.features.schema import DATE_MAX, DATE_MIN, F32_MAX, is_integer_time

_OVERFLOW = (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime,
             pd.errors.OutOfBoundsTimedelta)


def fits_float32(values: np.ndarray) -> np.ndarray:
    """Per value: False where it is finite but beyond float32 (NaN and inf pass: other
    checks report those)."""
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(values) & (np.abs(values) > F32_MAX))


def last_rows(ds: pd.Series, starts: np.ndarray) -> np.ndarray:
    """Position of the last non-null ds of each run of same-series rows (the frame is sorted
    by unique_id, ds: nulls last); -1 for a run with no ds at all."""
    if not len(starts):
        return np.array([], dtype=np.int64)
    pos = np.where(ds.notna().to_numpy(), np.arange(len(ds)), -1)
    last = np.maximum.reduceat(pos, starts)
    return np.where(last >= starts, last, -1)


def range_ok(ds: pd.Series, starts: np.ndarray, freq: str | int, horizon: int,
             id_na: np.ndarray) -> np.ndarray:
    """Per row: False on the last row of a series whose forecast dates (ds + ``horizon``
    steps of ``freq``) leave the representable range (9999-12-31, or int64 for integer
    steps), and on any row whose ds is before 0001-01-01. Rows without an id (``id_na``)
    are no series: not checked."""
    ok = np.ones(len(ds), dtype=bool)
    last = last_rows(ds, starts)
    last = last[last >= 0]
    last = last[~id_na[last]]
    if not len(last):
        return ok
    values = ds.iloc[last].reset_index(drop=True)
    if is_integer_time(freq):
        top = np.iinfo(np.int64).max - horizon * int(freq)  # a Python int: never wraps
        steps = values.to_numpy(dtype=np.int64)
        info = np.iinfo(np.int64)
        ok[last] = steps <= np.int64(top) if top >= info.min else False
        return ok
    ok &= ~(ds < DATE_MIN).to_numpy(dtype=bool, na_value=False)
    ok[last] &= _ends(values, freq, horizon) <= DATE_MAX
    return ok


def _ends(values: pd.Series, freq: str, horizon: int) -> np.ndarray:
    """``values`` + ``horizon`` steps of ``freq``; where that overflows even numpy's
    datetime64[us], a day after ``DATE_MAX`` (so it fails the check)."""
    offset = pd.tseries.frequencies.to_offset(freq)
    beyond = DATE_MAX + pd.Timedelta(days=1)
    try:
        return (values + horizon * offset).to_numpy()
    except _OVERFLOW:
        out = []
        for v in values:
            try:
                out.append(pd.Timestamp(v) + horizon * offset)
            except _OVERFLOW:
                out.append(beyond)
        return pd.Series(out, dtype="datetime64[us]").to_numpy()


def window_ok(starts: np.ndarray, lengths: np.ndarray, n_rows: int, window: int
              ) -> np.ndarray:
    """Per row: all True when some series has at least ``window`` rows (lookback +
    horizon: one full window); otherwise False on the first row of every series (no
    series fills a single window; the windows would be padding)."""
    ok = np.ones(n_rows, dtype=bool)
    if window and len(lengths) and lengths.max() < window:
        ok[starts] = False
    return ok
