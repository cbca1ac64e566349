"""Filling gaps in the grid (``data.fill_gaps``) and saying what was filled: pure pandas.

:func:`fill_gaps` inserts the timestamps missing between two rows of a series that lie on
its grid (``freq`` steps apart), for gaps of at most ``max_gap`` missing steps; longer
gaps and rows off the grid are left for validation to report. The inserted rows are
flagged (``_inserted``) and get y as ``method`` says (``zero``, ``ffill``: the previous
value; ``interpolate``: left empty for :func:`deepcast.features.cleaning.interpolate`);
their covariates carry the previous row's value forward. :func:`fill_summary` tells, per
series, how much of it was made up (inserted or interpolated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.schema import (
    DS,
    DS_INVALID,
    FLAG_COLUMNS,
    ID,
    INSERTED,
    ROW,
    Y_INVALID,
    Y,
    is_integer_time,
    on_grid,
    same_as_previous,
)

FILL_METHODS = ("interpolate", "zero", "ffill")
MAX_INSERTED_FACTOR = 10  # inserting more than 10x the data's rows (+1M) is refused


@dataclass(frozen=True)
class _Gaps:
    """The fillable gaps: row after each gap, its series, and the timestamps to insert."""

    ids: pd.Series  # one per inserted row
    ds: pd.Series  # one per inserted row


def fill_gaps(frame: pd.DataFrame, freq: str | int, method: str, max_gap: int | None
              ) -> tuple[pd.DataFrame, int]:
    """(``frame`` with the missing steps of each series' grid inserted, rows inserted);
    the frame must be sorted by (unique_id, ds). Gaps longer than ``max_gap`` missing
    steps (None: any length) are not filled; :class:`DataError` when filling would insert
    more than 10x the data's rows (+1M): dates that far apart are wrong, not gaps."""
    if method not in FILL_METHODS:
        raise ValueError(f"fill method {method!r}; expected one of {FILL_METHODS}")
    gaps = _find_gaps(frame, freq, max_gap)
    if gaps is None or not len(gaps.ds):
        return frame, 0
    added = frame.iloc[:0].reindex(range(len(gaps.ds)))  # all empty, the frame's columns
    added[ID], added[DS] = gaps.ids.to_numpy(), gaps.ds.to_numpy()
    added[ROW] = np.zeros(len(added), dtype=frame[ROW].dtype)
    added[DS_INVALID] = added[Y_INVALID] = False
    added[Y] = 0.0 if method == "zero" else np.nan
    out = frame.assign(**{INSERTED: False})
    added[INSERTED] = True
    out = pd.concat([out, added[out.columns]], ignore_index=True)
    out = out.sort_values([ID, DS], kind="stable").reset_index(drop=True)
    carry = [c for c in out.columns if c not in (ID, DS, Y, *FLAG_COLUMNS)]
    if method == "ffill":
        carry.append(Y)
    inserted = out[INSERTED].to_numpy()
    for col in carry:
        out.loc[inserted, col] = out[col].groupby(out[ID], sort=False).ffill()[inserted]
    return out, len(added)


def _find_gaps(frame: pd.DataFrame, freq: str | int, max_gap: int | None) -> _Gaps | None:
    """The timestamps to insert: between consecutive rows of a series that are a whole
    number of steps apart, at most ``max_gap`` missing."""
    ids, ds = frame[ID], frame[DS]
    same = same_as_previous(ids)
    prev = ds.shift()
    after = same & ds.notna().to_numpy() & prev.notna().to_numpy()
    after &= ~on_grid(ds, ids, freq) & (ds > prev).to_numpy(dtype=bool, na_value=False)
    rows = np.flatnonzero(after)
    if not len(rows):
        return None
    step = _fixed_step(freq)
    if step is None:
        return _calendar_gaps(ids.iloc[rows], prev.iloc[rows], ds.iloc[rows], freq, max_gap)
    as_numpy = {"dtype": np.int64} if is_integer_time(freq) else {}
    lo, hi = prev.iloc[rows].to_numpy(**as_numpy), ds.iloc[rows].to_numpy(**as_numpy)
    if not is_integer_time(freq):
        step = np.timedelta64(step).astype((hi - lo).dtype)
    span = hi - lo
    whole = span % step == (0 if is_integer_time(freq) else np.timedelta64(0, "us"))
    missing = np.where(whole, span // step - 1, 0).astype(np.int64)
    if max_gap is not None:
        missing[missing > max_gap] = 0
    _refuse_too_many(int(missing.sum()), len(frame), ids.iloc[rows], lo, hi, missing)
    k = np.arange(int(missing.sum())) - np.repeat(np.cumsum(missing) - missing, missing) + 1
    stamps = np.repeat(lo, missing) + k * step
    return _Gaps(pd.Series(np.repeat(ids.iloc[rows].to_numpy(), missing)),
                 pd.Series(stamps).astype(ds.dtype))


def _fixed_step(freq: str | int) -> int | pd.Timedelta | None:
    """The step as a number or a fixed length (h, min, D ...); None for calendar offsets
    (weeks on a weekday, month starts ...) whose length varies."""
    if is_integer_time(freq):
        return int(freq)
    try:
        return pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except ValueError:
        return None


def _calendar_gaps(ids: pd.Series, lo: pd.Series, hi: pd.Series, freq: str,
                   max_gap: int | None) -> _Gaps:
    """Gaps of a calendar offset, one ``date_range`` each (gaps are few next to rows)."""
    offset = pd.tseries.frequencies.to_offset(freq)
    out_ids, out_ds = [], []
    for uid, start, end in zip(ids, lo, hi, strict=True):
        periods = None if max_gap is None else max_gap + 2
        grid = pd.date_range(start, end if periods is None else None, periods=periods,
                             freq=offset)
        if not len(grid) or grid[0] != start or end not in grid:
            continue  # off the grid, or longer than max_gap: reported by validation
        fill = grid[1:grid.get_loc(end)]
        out_ids += [uid] * len(fill)
        out_ds.append(fill)
    stamps = pd.Series(np.concatenate([d.to_numpy() for d in out_ds]) if out_ds else [],
                       dtype=hi.dtype)
    return _Gaps(pd.Series(out_ids, dtype=object), stamps)


def _refuse_too_many(n: int, n_rows: int, ids: pd.Series, lo: np.ndarray, hi: np.ndarray,
                     missing: np.ndarray) -> None:
    if n <= MAX_INSERTED_FACTOR * n_rows + 1_000_000:
        return
    i = int(np.argmax(missing))
    raise DataError(f"data.fill_gaps would insert {n:,} rows into {n_rows:,}: series "
                    f"{ids.iat[i]} alone misses {int(missing[i]):,} steps between {lo[i]} "
                    f"and {hi[i]}", hint="set data.max_gap to the longest gap worth filling, "
                    "or fix the dates of that series")


def fill_summary(frame: pd.DataFrame, filled: np.ndarray) -> list[dict]:
    """Per series with filled values (``filled``: per row, inserted or interpolated): how
    many, the longest run of consecutive filled steps, the first and last filled ds and
    the share of the series; the most filled series first."""
    if not filled.any():
        return []
    ids = frame[ID]
    same = same_as_previous(ids)
    start = filled & ~(np.append(False, filled[:-1]) & same)
    run = np.cumsum(start)
    sizes = pd.Series(frame[ID].to_numpy()[filled]).groupby(run[filled]).size()
    rows = pd.DataFrame({"series": ids.to_numpy()[filled], "ds": frame[DS].to_numpy()[filled],
                         "run": sizes.reindex(run[filled]).to_numpy()})
    per = rows.groupby("series", sort=False).agg(points=("ds", "size"), longest_run=(
        "run", "max"), first=("ds", "min"), last=("ds", "max"))
    length = ids.value_counts().reindex(per.index)
    per["share"] = (per["points"] / length).round(4)
    per = per.sort_values(["share", "points"], ascending=False, kind="stable")
    out = pd.DataFrame({"series": per.index.astype(str), "points": per["points"].to_numpy(),
                        "longest_run": per["longest_run"].to_numpy(),
                        "first": _texts(per["first"]), "last": _texts(per["last"]),
                        "share": per["share"].to_numpy(dtype=float)})
    return out.to_dict(orient="records")


def _texts(values: pd.Series) -> list[str]:
    """ds as reports write it: a date (or date and time), or the integer step."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        return [str(int(v)) for v in values]
    midnight = values == values.dt.normalize()
    return values.dt.strftime("%Y-%m-%d").where(
        midnight, values.dt.strftime("%Y-%m-%d %H:%M:%S")).tolist()
