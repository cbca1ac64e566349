"""Inferring the step of a long frame (``data.freq: auto``): pure pandas / numpy.

Integer ``ds``: the most common difference between consecutive rows of a series (1 for
M3-style steps). Datetime ``ds``: :func:`pandas.infer_freq` on each of up to
:data:`SAMPLE_SERIES` series (on stretches of :data:`STRETCH` rows when gaps make the
whole series irregular), then the alias most series agree on. Nothing is guessed when no
series has a regular stretch: the caller says so and asks for ``data.freq``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepcast.features.schema import AUTO, DS, ID, same_as_previous

__all__ = ["AUTO", "InferredFreq", "infer_freq"]
SAMPLE_SERIES = 200  # series looked at (evenly spread over the frame): enough to agree
STRETCH = 8  # rows per stretch tried when a whole series is irregular (gaps)
MAX_ROWS = 400  # rows of a series looked at (its first ones)


@dataclass(frozen=True)
class InferredFreq:
    """The inferred step and how sure it is: ``agree`` of the ``seen`` series gave it."""

    freq: str | int
    seen: int
    agree: int


def infer_freq(frame: pd.DataFrame) -> InferredFreq | None:
    """The step of ``frame`` (sorted by unique_id, ds); None when no series is regular
    enough to tell."""
    keyed = frame[frame[ID].notna() & frame[DS].notna()]
    if keyed.empty:
        return None
    starts = np.flatnonzero(~same_as_previous(keyed[ID]))
    ends = np.append(starts[1:], len(keyed))
    pick = np.unique(np.linspace(0, len(starts) - 1, min(len(starts), SAMPLE_SERIES))
                     .astype(int))
    if pd.api.types.is_integer_dtype(keyed[DS].dtype):
        return _integer_step(keyed[DS].to_numpy(dtype=np.int64), starts, ends, pick)
    ds = keyed[DS].to_numpy()
    guesses = [_alias(ds[starts[i]:min(ends[i], starts[i] + MAX_ROWS)]) for i in pick]
    found = Counter(g for g in guesses if g)
    if not found:
        return None
    alias, agree = found.most_common(1)[0]
    return InferredFreq(alias, len(pick), agree)


def _integer_step(ds: np.ndarray, starts: np.ndarray, ends: np.ndarray, pick: np.ndarray
                  ) -> InferredFreq | None:
    """The most common positive difference between consecutive steps of a series."""
    steps = []
    for i in pick:
        diff = np.diff(ds[starts[i]:min(ends[i], starts[i] + MAX_ROWS)])
        diff = diff[diff > 0]
        if len(diff):
            values, counts = np.unique(diff, return_counts=True)
            steps.append(int(values[np.argmax(counts)]))
    if not steps:
        return InferredFreq(1, len(pick), 0)  # one point per series: any step fits
    step, agree = Counter(steps).most_common(1)[0]
    return InferredFreq(step, len(pick), agree)


def _alias(ds: np.ndarray) -> str | None:
    """pandas' alias for one series' dates: the whole series, else the most common alias
    of its stretches between gaps; None when nothing is regular."""
    ds = np.unique(ds)  # sorted, repeats (a data error reported elsewhere) dropped
    whole = _infer(ds)
    if whole:
        return whole
    stretches = [_infer(ds[i:i + STRETCH]) for i in range(0, max(len(ds) - 2, 0), STRETCH)]
    found = Counter(s for s in stretches if s)
    return found.most_common(1)[0][0] if found else None


def _infer(ds: np.ndarray) -> str | None:
    if len(ds) < 3:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.infer_freq(pd.DatetimeIndex(ds))
    except (TypeError, ValueError):
        return None
