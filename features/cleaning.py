"""Cleaning a coerced long frame before validation: pure pandas / numpy, no framework.

The validate stage calls these in order: :func:`prepare` (flag columns present, float ``y``),
then, as the pipeline's ``data`` settings ask, :func:`quarantine` (``bad_rows``),
:func:`drop_short` (``short_series``) and :func:`interpolate` (``missing_y``), and last
:func:`canonical` for the frame handed to the next stage. Each returns a new frame (the
caller's is never changed) and says what it did, so the report can tell the user.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from deepcast.features.covariates import after_last_observed
from deepcast.features.schema import (
    DS,
    DS_INVALID,
    F32_MAX,
    FLAG_COLUMNS,
    ID,
    INSERTED,
    ROW,
    Y_INVALID,
    Y,
    row_numbers,
    same_as_previous,
)


def prepare(df: pd.DataFrame) -> pd.DataFrame:
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


def quarantine(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off the rows that cannot be used (``data.bad_rows: quarantine``): empty or
    unparseable keys and repeated (unique_id, ds) (the first row is kept) leave the frame;
    a row with a non-numeric or infinite y, or one beyond float32, stays in place with y
    missing (removing it would open a gap), so ``data.missing_y`` decides. Returns (frame,
    rejected rows with a ``reason``); ``frame`` is sorted like its input."""
    ids, ds = frame[ID], frame[DS]
    reason = pd.Series(pd.NA, index=frame.index, dtype="str")
    reason = reason.mask(ds.isna(), "ds is empty")
    reason = reason.mask(frame[DS_INVALID], "ds does not parse")
    reason = reason.mask(ids.isna(), "unique_id is empty")
    keyed = reason.isna()
    dup = keyed & frame[[ID, DS]].duplicated(keep="first")
    reason = reason.mask(dup, "duplicate (unique_id, ds)")
    leaves = reason.notna()
    y = frame[Y].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        big = np.isfinite(y) & (np.abs(y) > F32_MAX)
    bad_y = ~leaves & (frame[Y_INVALID] | np.isinf(y) | big)
    reason = reason.mask(bad_y & big, "y is beyond the float32 range")
    reason = reason.mask(bad_y & np.isinf(y), "y is not finite")
    reason = reason.mask(bad_y & frame[Y_INVALID], "y is not a number")
    kept_row = frame[ROW].where(keyed).groupby([ids, ds], sort=False).transform("first")
    rejected = frame[reason.notna()].assign(reason=reason[reason.notna()],
                                            kept_row=kept_row.where(dup).astype("Int64"))
    kept = frame[~leaves].copy()
    kept.loc[bad_y[~leaves], Y] = np.nan
    kept[Y_INVALID] = False
    return kept.reset_index(drop=True), rejected


def drop_short(frame: pd.DataFrame, min_len: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Remove series shorter than ``min_len`` (rows with a null id are kept, to be reported)."""
    counts = frame[ID].value_counts()
    short = counts[counts < min_len].sort_index()
    if short.empty:
        return frame, {}
    keep = ~frame[ID].isin(short.index)
    out = frame.loc[keep].reset_index(drop=True)
    return out, {str(k): int(v) for k, v in short.items()}


def interpolate(frame: pd.DataFrame, max_gap: int | None = None, original: bool = True
                ) -> tuple[pd.DataFrame, np.ndarray]:
    """Fill missing y linearly within each series (edges: nearest value): the rows inserted
    on the grid (``_inserted``, y empty) and, with ``original``, the rows whose y is
    missing in the data (not unparseable ones). A hole of more than ``max_gap`` consecutive
    missing values is left as it is (validation reports it). Returns (frame, per row: y
    was filled here)."""
    y = frame[Y]
    ids = frame[ID]
    holes = (y.isna() & ~frame[Y_INVALID] & ids.notna()).to_numpy()
    fillable = holes & (original | inserted_rows(frame))
    if max_gap is not None:
        fillable &= _hole_length(holes, ids) <= max_gap
    if not fillable.any():
        return frame, fillable
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
    filled = y.mask(fillable, fill)
    frame = frame.copy()
    frame[Y] = filled.astype("float64")
    return frame, fillable & filled.notna().to_numpy()


class Trailing(NamedTuple):
    """Rows left out by :func:`drop_trailing_missing`, and the series they were in."""

    rows: int
    series: int


def drop_trailing_missing(frame: pd.DataFrame) -> tuple[pd.DataFrame, Trailing]:
    """``frame`` (sorted by series and ds) without the rows after each series' last observed
    ``y`` whose ``y`` is empty: interpolation fills between observations, and after the
    last one it could only repeat it into what becomes the holdout."""
    # an unparseable y (flagged, kept for validation to report) counts as a value here
    empty = frame[Y].isna().to_numpy() & ~frame[Y_INVALID].to_numpy(dtype=bool)
    if not empty.any():
        return frame, Trailing(0, 0)
    tail = after_last_observed(frame[ID], empty) & frame[ID].notna().to_numpy()
    # (a series with no value at all is validation's to report)
    tail &= frame[ID].isin(frame.loc[~empty, ID].unique()).to_numpy()
    if not tail.any():
        return frame, Trailing(0, 0)
    left_out = Trailing(int(tail.sum()), int(frame.loc[tail, ID].nunique()))
    return frame.loc[~tail].reset_index(drop=True), left_out


def inserted_rows(frame: pd.DataFrame) -> np.ndarray:
    """Per row: inserted on the grid by :func:`deepcast.features.gaps.fill_gaps`."""
    if INSERTED not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[INSERTED].to_numpy(dtype=bool)


def _hole_length(holes: np.ndarray, ids: pd.Series) -> np.ndarray:
    """Per row: the length of the run of consecutive ``holes`` rows of one series it is in
    (0 outside holes)."""
    start = holes & ~(np.append(False, holes[:-1]) & same_as_previous(ids))
    run = np.cumsum(start)
    sizes = np.bincount(run[holes], minlength=int(run[-1]) + 1 if len(run) else 1)
    return np.where(holes, sizes[run], 0)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop flags, type the canonical columns, fresh RangeIndex (order kept)."""
    out = frame.drop(columns=[c for c in FLAG_COLUMNS if c in frame.columns])
    out[ID] = out[ID].astype("str")
    if isinstance(out[DS].dtype, pd.Int64Dtype) and not out[DS].isna().any():
        out[DS] = out[DS].astype("int64")
    out[Y] = out[Y].astype("float64")
    rest = [c for c in out.columns if c not in (ID, DS, Y)]
    return out[[ID, DS, Y, *rest]].reset_index(drop=True)
