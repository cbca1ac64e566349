"""What the validation rules read about a frame, and the example rows they show.

:func:`frame_facts` computes, once per run and in a few vectorised passes over the sorted
frame, the per-row booleans the rules of :mod:`deepcast.pipelines.validation.rules` are
made of; only what a rule reads is kept (10 MB per boolean at 10M rows). The example
pickers turn offending row positions into the dicts the report shows (row number, series,
ds, y, plus what the check is about).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.schema import (
    DS,
    DS_INVALID,
    ID,
    ROW,
    Y_INVALID,
    Y,
    is_integer_time,
    on_grid,
    same_as_previous,
)
from deepcast.pipelines.validation.limits import range_ok, window_ok


@dataclass(frozen=True)
class FrameFacts:
    """Per-row facts of one sorted frame (numpy arrays of its length)."""

    frame: pd.DataFrame
    y: np.ndarray  # y as float64
    id_na: np.ndarray
    ds_na: np.ndarray
    ds_invalid: np.ndarray  # ds present but unparseable
    y_invalid: np.ndarray  # y present but not a number
    inc_ok: np.ndarray  # ds increases within its series (or cannot be judged)
    grid_ok: np.ndarray  # ds one freq step after the previous row (or cannot be judged)
    dup_rows: np.ndarray  # every row of a repeated (unique_id, ds)
    short_first: np.ndarray  # the first row of each series shorter than min_len
    range_ok: np.ndarray  # forecast dates representable (False: a series' last row)
    window_ok: np.ndarray  # some series fills one window (False: every series' first row)
    starts: np.ndarray  # first row of each run of same-series rows
    lengths: np.ndarray  # length of each such run
    ds_seen: pd.Series  # ds as GE sees it: unparseable cells get a stand-in value


def frame_facts(frame: pd.DataFrame, freq: str | int, min_len: int, horizon: int = 1,
                window: int = 0) -> FrameFacts:
    """The facts of ``frame`` (sorted by unique_id, ds) for grid ``freq``, ``min_len``,
    forecasts of ``horizon`` steps and windows of ``window`` rows (0: not checked)."""
    ids, ds = frame[ID], frame[DS]
    ds_na = ds.isna().to_numpy()
    id_na = ids.isna().to_numpy()
    ds_invalid = frame[DS_INVALID].to_numpy(dtype=bool)
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

    # unparseable cells are their own check, so they get a stand-in value here instead of
    # counting as empty too (a GE row_condition would copy the whole frame)
    stand_in = 0 if is_integer_time(freq) else pd.Timestamp(0)
    ds_seen = ds.where(~ds_invalid, stand_in) if ds_invalid.any() else ds
    return FrameFacts(
        frame=frame, y=frame[Y].to_numpy(dtype="float64"), id_na=id_na, ds_na=ds_na,
        ds_invalid=ds_invalid, y_invalid=frame[Y_INVALID].to_numpy(dtype=bool),
        inc_ok=inc_ok, grid_ok=grid_ok, dup_rows=dup_rows, short_first=short_first,
        range_ok=range_ok(ds, starts, freq, horizon, id_na),
        window_ok=window_ok(starts, lengths, len(frame), window),
        starts=starts, lengths=lengths, ds_seen=ds_seen,
    )


def _runs(same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row, length) of each run of same-series rows (the frame is sorted by id)."""
    starts = np.flatnonzero(~same)
    return starts, np.diff(np.append(starts, len(same)))


# --------------------------------------------------------------------------- examples


def row_examples(facts: FrameFacts, idx: np.ndarray) -> list[dict]:
    """The rows at positions ``idx`` as the source had them."""
    return [_row_example(facts.frame, int(i)) for i in idx]


def grid_examples(facts: FrameFacts, idx: np.ndarray) -> list[dict]:
    """Rows off the grid, with the ds of the row before them."""
    frame = facts.frame
    out = []
    for i in idx:
        ex = _row_example(frame, int(i))
        ex["previous_ds"] = format_ds(frame[DS].iat[int(i) - 1]) if i > 0 else None
        out.append(ex)
    return out


def length_examples(facts: FrameFacts, idx: np.ndarray) -> list[dict]:
    """First rows of short series, with the length of their series."""
    out = []
    for i in idx:
        ex = _row_example(facts.frame, int(i))
        ex["length"] = int(facts.lengths[np.searchsorted(facts.starts, i, side="right") - 1])
        out.append(ex)
    return out


def _row_example(frame: pd.DataFrame, i: int) -> dict:
    uid = frame[ID].iat[i]
    ex = {
        "row": int(frame[ROW].iat[i]),
        "unique_id": None if pd.isna(uid) else str(uid),
        "ds": format_ds(frame[DS].iat[i]),
        "y": _format_y(frame[Y].iat[i]),
    }
    if frame[DS_INVALID].iat[i]:
        ex["ds_invalid"] = True
    if frame[Y_INVALID].iat[i]:
        ex["y_invalid"] = True
    return ex


def format_ds(value: Any) -> str | None:
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
