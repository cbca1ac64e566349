"""Hierarchies: the aggregate series built from the bottom ones, and their summing matrix.

A bottom series' place in the hierarchy is either in columns of the data (``state``,
``industry``: static columns, one value per series) or in its ``unique_id``, the parts
joined by a separator (``"VIC|Food"`` with ``|`` for the columns ``[state, industry]``). Each
aggregate level is a subset of those columns (``[]`` the total, ``[state]`` every state);
an aggregate series is the sum of the bottom series that share its values, per ``ds``
(sums over the series observed at that ``ds``). Every series gets a ``level`` column (the
level's columns joined by ``/``, ``total`` for the total) that the models see as a static
categorical. The summing matrix ``S`` (n_series, n_bottom) maps bottom values to every
series: coherent forecasts are ``S @ b`` for some bottom forecasts ``b``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.schema import DS, ID, Y

LEVEL = "level"  # the static column naming each series' level
TOTAL = "total"  # id and level name of the grand total


@dataclass(frozen=True)
class HierarchySpec:
    """What ``hierarchy:`` declares: the columns (top first), the id separator and the
    aggregate levels to build (each a tuple of columns; () is the total)."""

    columns: tuple[str, ...]
    separator: str  # splits bottom ids (in_id), and joins the parts of aggregate ids
    levels: tuple[tuple[str, ...], ...]  # top first; the last is ``columns`` (the bottom)
    in_id: bool = True  # the parts are in unique_id; else in the columns of the data

    def level_name(self, level: tuple[str, ...]) -> str:
        return "/".join(level) if level else TOTAL

    @property
    def bottom_name(self) -> str:
        return self.level_name(self.columns)


@dataclass(frozen=True)
class Structure:
    """Every series of a hierarchy in ``S`` row order (aggregates level by level, then the
    bottom series), its level, and the summing matrix."""

    ids: np.ndarray  # (n_series,) str
    levels: np.ndarray  # (n_series,) level name of each
    S: np.ndarray  # (n_series, n_bottom) 0/1

    @property
    def n_bottom(self) -> int:
        return int(self.S.shape[1])

    def tags(self) -> dict[str, np.ndarray]:
        """Level name -> row indices of ``S`` (hierarchicalforecast's ``tags``)."""
        return {name: np.flatnonzero(self.levels == name)
                for name in dict.fromkeys(self.levels.tolist())}

    def to_dict(self) -> dict:
        """Plain JSON: ids, levels and, per series, the bottom columns it sums."""
        return {"ids": self.ids.tolist(), "levels": self.levels.tolist(),
                "members": [np.flatnonzero(row).tolist() for row in self.S]}

    @classmethod
    def from_dict(cls, d: dict) -> Structure:
        members = d["members"]
        n_bottom = 1 + max((max(m) for m in members if m), default=-1)
        S = np.zeros((len(members), n_bottom))
        for i, m in enumerate(members):
            S[i, m] = 1.0
        return cls(np.asarray(d["ids"], dtype=object), np.asarray(d["levels"], dtype=object),
                   S)


ALL = "*"  # the value of a column an aggregate sums over (industry of a state's total)


def parts(df: pd.DataFrame, spec: HierarchySpec) -> pd.DataFrame:
    """The hierarchy columns of bottom rows: the data's own (one value per series), or
    the ids split at the separator; DataError naming the series that break this."""
    if not spec.in_id:
        cols = df[list(spec.columns)].astype(str)
        varying = cols.groupby(df[ID].to_numpy()).nunique().gt(1).any(axis=1)
        if varying.any():
            raise DataError(f"hierarchy: {int(varying.sum())} series change their "
                            f"{', '.join(spec.columns)} over time: "
                            f"{varying.index[varying].tolist()[:5]}",
                            hint="a series belongs to one place of the hierarchy")
        return cols
    ids = df[ID]
    split = ids.astype(str).str.split(spec.separator, regex=False)
    bad = split.str.len() != len(spec.columns)
    if bad.any():
        wrong = pd.unique(ids[bad])[:5].tolist()
        raise DataError(
            f"hierarchy: {int(pd.Series(ids[bad]).nunique())} series ids do not have "
            f"{len(spec.columns)} parts ({', '.join(spec.columns)}) separated by "
            f"{spec.separator!r}: {wrong}",
            hint="write every bottom id as its parts joined by hierarchy.separator, e.g. "
            f"{spec.separator.join(spec.columns)}")
    return pd.DataFrame(split.tolist(), columns=list(spec.columns), index=ids.index)


def aggregate(df: pd.DataFrame, spec: HierarchySpec) -> pd.DataFrame:
    """``df`` (bottom series: ``unique_id, ds, y``) with every aggregate series of
    ``spec.levels`` added (sums per ``ds``), a ``level`` column on every row, sorted by
    series and ``ds``."""
    own = () if spec.in_id else spec.columns
    extra = [c for c in df.columns if c not in (ID, DS, Y, *own)]
    if extra:
        raise DataError(f"hierarchy: covariate columns are not aggregated ({extra})",
                        hint="remove the covariates from the YAML, or the hierarchy")
    cols = parts(df, spec)
    last = df.groupby(ID, sort=False)[DS].max()
    stale = last.index[last < last.max()]
    if len(stale):
        raise DataError(
            f"hierarchy: {len(stale)} bottom series end before the others "
            f"({last.max()}): {stale.tolist()[:5]}; their forecasts would fall on other "
            "dates than the rest of the hierarchy, so nothing could be reconciled",
            hint="drop these series from the data, or give them their latest values")
    frames = []
    for level in spec.levels:
        if level == spec.columns:
            continue
        keyed = pd.concat([cols[list(level)], df[[DS, Y]]], axis=1)
        sums = keyed.groupby([*level, DS], sort=True)[Y].sum(min_count=1).reset_index()
        sums[ID] = _ids(sums, level, spec)
        sums = sums.assign(**{c: ALL for c in own if c not in level})
        frames.append(sums[[ID, DS, Y, *own]].assign(**{LEVEL: spec.level_name(level)}))
    frames.append(df[[ID, DS, Y, *own]].assign(**{LEVEL: spec.bottom_name}))
    out = pd.concat(frames, ignore_index=True)
    clash = set(out.loc[out[LEVEL] != spec.bottom_name, ID]) & set(df[ID])
    if clash:
        raise DataError(f"hierarchy: aggregate ids clash with bottom ids: {sorted(clash)[:5]}",
                        hint="use a separator that does not occur in the parts")
    pairs = out.loc[out[LEVEL] != spec.bottom_name, [ID, LEVEL]].drop_duplicates()
    shared = pairs[pairs[ID].duplicated(keep=False)].groupby(ID, sort=True)[LEVEL].unique()
    if len(shared):  # e.g. a state and an industry both called "Victoria"
        named = "; ".join(f"{uid!r} ({' and '.join(map(str, lv))})"
                          for uid, lv in shared.head(5).items())
        raise DataError(f"hierarchy: {len(shared)} aggregate id(s) name series of two levels: "
                        f"{named}", hint="make the values of the hierarchy columns distinct "
                        "across columns (e.g. prefix each with its column's name)")
    return out.sort_values([ID, DS], kind="stable").reset_index(drop=True)


def _ids(frame: pd.DataFrame, level: tuple[str, ...], spec: HierarchySpec) -> pd.Series:
    if not level:
        return pd.Series(TOTAL, index=frame.index)
    return frame[list(level)].astype(str).agg(spec.separator.join, axis=1)


def structure(df: pd.DataFrame, spec: HierarchySpec) -> Structure:
    """The summing matrix of an aggregated frame (``aggregate``'s output, or any frame
    with its ``level`` column)."""
    own = [] if spec.in_id else list(spec.columns)
    table = df[[ID, LEVEL, *own]].drop_duplicates(ID)
    rows = table[table[LEVEL] == spec.bottom_name].sort_values(ID).reset_index(drop=True)
    bottom = rows[ID].to_numpy()
    cols = parts(rows, spec)
    order = {spec.level_name(lv): i for i, lv in enumerate(spec.levels)}
    table = table.assign(_rank=table[LEVEL].map(order)).sort_values(["_rank", ID])[[ID, LEVEL]]
    ids, levels = table[ID].to_numpy(dtype=object), table[LEVEL].to_numpy(dtype=object)
    S = np.zeros((len(ids), len(bottom)))
    by_level = {spec.level_name(lv): lv for lv in spec.levels}
    for i, (uid, name) in enumerate(zip(ids, levels, strict=True)):
        level = by_level[name]
        key = _ids(cols, level, spec) if level else pd.Series(TOTAL, index=cols.index)
        S[i] = (key.to_numpy() == uid) if level != spec.columns else (bottom == uid)
    return Structure(ids, levels, S)
