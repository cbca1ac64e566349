"""Warnings about the panel as a whole: nothing here fails validation, but each is said.

A series that stopped long before the others is still trained and forecast from its own
last date (its "next 6 months" may be years ago); a series that is mostly filled-in values
is fit and scored on values nobody measured. :func:`stale_series` finds the first,
:func:`fill_warning` and :func:`stale_warning` word both for the summary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepcast.features.schema import DS, ID, is_integer_time, same_as_previous
from deepcast.pipelines.validation.facts import format_ds
from deepcast.pipelines.validation.limits import last_rows

FILL_WARN_SHARE = 0.10  # a series more than this share filled gets a warning
MAX_LISTED = 1000  # series listed in validation.json per finding (the counts are whole)
SHOWN = 10  # series named in a summary line


def stale_series(frame: pd.DataFrame, freq: str | int, behind: int) -> list[dict]:
    """Series whose last ds is more than ``behind`` steps of ``freq`` before the panel's
    latest ds: ``{series, last_ds, steps_behind}``, the furthest behind first. ``frame``
    is sorted by (unique_id, ds)."""
    ids, ds = frame[ID], frame[DS]
    rows = last_rows(ds, np.flatnonzero(~same_as_previous(ids)))  # sorted: no groupby
    rows = rows[rows >= 0]
    rows = rows[ids.iloc[rows].notna().to_numpy()]
    if not len(rows):
        return []
    last = pd.Series(ds.iloc[rows].to_numpy(), index=ids.iloc[rows].to_numpy())
    latest = last.max()
    try:
        cutoff = _back(latest, freq, behind)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        return []  # the panel spans less than that: nothing can be that far behind
    stale = last[last < cutoff]
    if stale.empty:
        return []
    steps = [_steps(t, latest, freq) for t in stale]
    out = [{"series": str(uid), "last_ds": format_ds(t), "steps_behind": int(n)}
           for uid, t, n in zip(stale.index, stale, steps, strict=True)]
    return sorted(out, key=lambda r: -r["steps_behind"])


def _back(latest: pd.Timestamp | int, freq: str | int, n: int) -> pd.Timestamp | int:
    """``n`` steps of ``freq`` before ``latest``."""
    if is_integer_time(freq):
        return int(latest) - n * int(freq)
    return latest - n * pd.tseries.frequencies.to_offset(freq)


def _steps(start: pd.Timestamp | int, end: pd.Timestamp | int, freq: str | int) -> int:
    """Whole ``freq`` steps from ``start`` to ``end``."""
    if is_integer_time(freq):
        return (int(end) - int(start)) // int(freq)
    offset = pd.tseries.frequencies.to_offset(freq)
    try:
        return int((end - start) // pd.Timedelta(offset))
    except ValueError:  # calendar offsets (month starts, weeks on a weekday ...)
        return max(len(pd.date_range(start, end, freq=offset)) - 1, 0)


def stale_warning(stale: list[dict], n_series: int, behind: str, latest: str) -> str | None:
    """The summary's warning about stale series (``behind``: the threshold in words)."""
    if not stale:
        return None
    shown = ", ".join(f"{r['series']} (last ds {r['last_ds']}, {r['steps_behind']} steps "
                      "behind)" for r in stale[:SHOWN])
    more = f" and {len(stale) - SHOWN} more" if len(stale) > SHOWN else ""
    return (f"{len(stale)} of {n_series} series end more than {behind} before the latest ds "
            f"{latest}; they are trained and forecast from their own last date: "
            f"{shown}{more}. Check that their data is complete, or remove them")


def fill_warning(filled: list[dict]) -> str | None:
    """The summary's warning about series more than :data:`FILL_WARN_SHARE` filled."""
    heavy = [r for r in filled if r["share"] > FILL_WARN_SHARE]
    if not heavy:
        return None
    shown = ", ".join(f"{r['series']} ({_pct(r['share'])}, {r['points']} points)"
                      for r in heavy[:SHOWN])
    more = f" and {len(heavy) - SHOWN} more" if len(heavy) > SHOWN else ""
    verb = "is" if len(heavy) == 1 else "are"
    return (f"{len(heavy)} series {verb} more than {_pct(FILL_WARN_SHARE)} filled-in values: "
            f"{shown}{more}; their fit and scores rest on values nobody measured (set "
            "data.max_gap to refuse long holes)")


def _pct(share: float) -> str:
    return f"{100 * share:.3g} %"


def latest_ds(frame: pd.DataFrame) -> str:
    """The panel's latest ds, as the summary writes it."""
    values = frame[DS].dropna()
    return format_ds(values.max()) if len(values) else ""

