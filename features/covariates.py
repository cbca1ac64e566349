"""Inputs beyond the target: static, past and future covariates, calendar features and the
codes that feed embeddings.

Kinds (declared in the pipeline YAML, ``data.static`` / ``data.past`` / ``data.future``):

- **static**: one value per series (categorical -> learned embedding; numeric -> scaled);
- **past**: observed only up to the forecast origin: windows carry them over the lookback
  only, never over the horizon (no leakage by construction, tested);
- **future**: known over the horizon too (planned prices, holidays, calendar): windows carry
  them over lookback + horizon; at forecast time they come with the request.

:class:`CovariateEncoder` is fit on the training span only (numeric mean/std, category and
series vocabularies) and turns a long frame into arrays aligned with its :class:`Panel`.
Code 0 of every vocabulary means "unseen": an unknown series or category at forecast time
gets code 0, whose embedding is set to the mean of the learned ones (documented fallback).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.schema import DS, F32_MAX, ID, is_integer_time

#: calendar features by name: (pandas accessor, period) -> sin/cos pair of the position
CALENDAR = {
    "minute": (lambda d: d.minute, 60),
    "hour": (lambda d: d.hour + d.minute / 60.0, 24),
    "dayofweek": (lambda d: d.dayofweek + d.hour / 24.0, 7),
    "dayofmonth": (lambda d: d.day - 1, 31),
    "dayofyear": (lambda d: d.dayofyear - 1, 366),
    "weekofyear": (lambda d: d.isocalendar().week.to_numpy() - 1, 53),
    "month": (lambda d: d.month - 1, 12),
    "quarter": (lambda d: d.quarter - 1, 4),
}


def default_calendar(freq: str | int) -> tuple[str, ...]:
    """Calendar features that vary within a year at this frequency (none for integer ds):
    sub-daily: hour, dayofweek; daily: dayofweek, dayofyear; weekly: weekofyear; monthly:
    month; quarterly: quarter; yearly: none."""
    if is_integer_time(freq):
        return ()
    offset = pd.tseries.frequencies.to_offset(freq)
    name = offset.name.upper()
    try:
        step = pd.Timedelta(offset)
    except ValueError:  # week/month/quarter/year offsets have no fixed length
        step = None
    if step is not None and step < pd.Timedelta(days=1):
        return ("hour", "dayofweek")
    if step is not None and step < pd.Timedelta(days=7):
        return ("dayofweek", "dayofyear")
    if (step is not None and step < pd.Timedelta(days=28)) or name.startswith("W"):
        return ("weekofyear",)
    if name.startswith(("Q", "BQ")):
        return ("quarter",)
    if name.startswith(("M", "BM", "SM", "CBM")):
        return ("month",)
    return ()


def calendar_features(ds: np.ndarray | pd.Series, names: tuple[str, ...]) -> np.ndarray:
    """(n, 2 * len(names)) float32: sin and cos of each feature's position in its cycle."""
    d = pd.DatetimeIndex(pd.Series(ds).to_numpy())
    cols = []
    for name in names:
        accessor, period = CALENDAR[name]
        angle = 2 * np.pi * np.asarray(accessor(d), dtype=np.float64) / period
        cols += [np.sin(angle), np.cos(angle)]
    if not cols:
        return np.zeros((len(d), 0), dtype=np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


@dataclass(frozen=True)
class CovariateSpec:
    """Which columns are covariates of which kind, and how they are encoded."""

    static: tuple[str, ...] = ()
    past: tuple[str, ...] = ()
    future: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()  # static columns encoded as categories
    calendar: tuple[str, ...] = ()  # calendar features (future covariates from ds)
    id_embedding: int = 0  # width of the learned series-ID embedding (0: none)
    embedding_dim: int = 4  # width of each categorical static's embedding

    @property
    def columns(self) -> tuple[str, ...]:
        return self.static + self.past + self.future

    @property
    def static_numeric(self) -> tuple[str, ...]:
        return tuple(c for c in self.static if c not in self.categorical)

    @property
    def static_categorical(self) -> tuple[str, ...]:
        return tuple(c for c in self.static if c in self.categorical)

    @property
    def n_future(self) -> int:
        return len(self.future) + 2 * len(self.calendar)

    @property
    def future_names(self) -> tuple[str, ...]:
        """The future channels: user columns, then each calendar feature's sin and cos."""
        return self.future + tuple(f"{c}_{t}" for c in self.calendar for t in ("sin", "cos"))

    @property
    def empty(self) -> bool:
        return not (self.columns or self.calendar or self.id_embedding)


@dataclass
class Covariates:
    """Covariate arrays aligned with a panel (point-major arrays follow ``panel.values``)."""

    past: np.ndarray  # (n_points, n_past) float32
    future: np.ndarray  # (n_points, n_future) float32: user future columns + calendar
    static: np.ndarray  # (n_series, n_static_numeric) float32
    static_cat: np.ndarray  # (n_series, n_static_categorical) int32 codes, 0 = unseen
    series: np.ndarray  # (n_series,) int32 series-ID code, 0 = unseen

    def left_pad(self, offsets: np.ndarray, pads: np.ndarray) -> Covariates:
        """The point-major arrays left-padded with zeros like ``features.windows.pad_panel``
        pads the target (``offsets`` of the unpadded panel)."""
        from deepcast.features.windows import left_pad

        self.past, _ = left_pad(self.past, offsets, pads, 0.0)
        self.future, _ = left_pad(self.future, offsets, pads, 0.0)
        return self


SERIES = ""  #: the key of new series in :meth:`CovariateEncoder.unseen`


@dataclass
class CovariateEncoder:
    """Fit on the training span; encode frames into :class:`Covariates`."""

    spec: CovariateSpec
    freq: str | int = 1
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    vocab: dict[str, dict[str, int]] = field(default_factory=dict)  # static cat -> codes
    ids: dict[str, int] = field(default_factory=dict)  # series id -> code (1..n)

    def fit(self, train: pd.DataFrame) -> CovariateEncoder:
        """Learn scaling and vocabularies from the training rows only."""
        s = self.spec
        for col in s.past + s.future + s.static_numeric:
            v = pd.to_numeric(train[col], errors="coerce").to_numpy(dtype=np.float64)
            mean = float(np.nanmean(v)) if len(v) else 0.0
            std = float(np.nanstd(v)) if len(v) else 1.0
            self.numeric[col] = (mean, std if std > 1e-12 else 1.0)
        firsts = train.groupby(ID, sort=True).first()
        for col in s.static_categorical:
            values = sorted(firsts[col].astype(str).unique())
            self.vocab[col] = {v: i + 1 for i, v in enumerate(values)}
        self.ids = {str(i): k + 1 for k, i in enumerate(firsts.index)}
        return self

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes of the categorical statics (unseen code 0 included)."""
        return [len(self.vocab[c]) + 1 for c in self.spec.static_categorical]

    def _scaled(self, df: pd.DataFrame, cols: tuple[str, ...]) -> np.ndarray:
        if not cols:
            return np.zeros((len(df), 0), dtype=np.float32)
        out = np.empty((len(df), len(cols)), dtype=np.float32)
        for j, col in enumerate(cols):
            mean, std = self.numeric[col]
            out[:, j] = (pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64) - mean) / std
        return out

    def future_values(self, df: pd.DataFrame) -> np.ndarray:
        """The future-covariate block (user columns, then calendar) of rows of ``df``."""
        cal = calendar_features(df[DS], self.spec.calendar) if self.spec.calendar else None
        user = self._scaled(df, self.spec.future)
        return user if cal is None else np.concatenate([user, cal], axis=1)

    def transform(self, df: pd.DataFrame) -> Covariates:
        """Arrays for a canonical frame sorted by (unique_id, ds), like its panel."""
        s = self.spec
        firsts = df.groupby(ID, sort=False).first()
        static_cat = np.zeros((len(firsts), len(s.static_categorical)), dtype=np.int32)
        for j, col in enumerate(s.static_categorical):
            codes = self.vocab[col]
            static_cat[:, j] = [codes.get(str(v), 0) for v in firsts[col]]
        return Covariates(
            past=self._scaled(df, s.past),
            future=self.future_values(df),
            static=self._scaled(firsts, s.static_numeric),
            static_cat=static_cat,
            series=np.array([self.ids.get(str(i), 0) for i in firsts.index], dtype=np.int32),
        )

    def unseen(self, df: pd.DataFrame) -> dict[str, dict[str, int]]:
        """What ``df`` (a canonical frame) holds that training did not: per categorical
        static, its new categories and how many series have each; under ``SERIES`` (with
        an ID embedding) the new series. They are encoded as code 0, whose embedding is the
        mean of the learned ones: a documented fallback, said by :meth:`unseen_notes`.
        Counts of shards add up."""
        firsts = df.groupby(ID, sort=True).first()
        out: dict[str, dict[str, int]] = {}
        for col in self.spec.static_categorical:
            values = firsts[col].astype(str)
            new = values[~values.isin(list(self.vocab[col]))]
            if len(new):
                out[col] = {str(k): int(v) for k, v in new.value_counts().items()}
        if self.spec.id_embedding:
            new_ids = [i for i in firsts.index.astype(str) if i not in self.ids]
            if new_ids:
                out[SERIES] = dict.fromkeys(new_ids, 1)
        return out

    def unseen_notes(self, unseen: dict[str, dict[str, int]]) -> list[str]:
        """One note per column of :meth:`unseen` (merged over shards)."""
        notes = []
        for col, counts in unseen.items():
            if col == SERIES:
                continue
            cats = sorted(counts)
            shown = ", ".join(map(repr, cats[:5])) + (" ..." if len(cats) > 5 else "")
            notes.append(f"static covariate {col!r}: {sum(counts.values())} series have a "
                         f"category not seen in training ({shown}; training had "
                         f"{len(self.vocab[col])}): they get the mean of the learned "
                         "embeddings")
        if unseen.get(SERIES):
            ids = sorted(unseen[SERIES])
            notes.append(f"{len(ids)} series not seen in training (e.g. {ids[0]}) get the "
                         "mean of the learned series embeddings")
        return notes

    @staticmethod
    def merge_unseen(parts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
        """The :meth:`unseen` of a panel from its shards'."""
        out: dict[str, dict[str, int]] = {}
        for part in parts:
            for col, counts in part.items():
                for key, n in counts.items():
                    out.setdefault(col, {})[key] = out.get(col, {}).get(key, 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"spec": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in asdict(self.spec).items()},
                "freq": self.freq, "numeric": self.numeric, "vocab": self.vocab,
                "ids": self.ids}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CovariateEncoder:
        spec = CovariateSpec(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in data["spec"].items()})
        return cls(spec, data["freq"], {k: tuple(v) for k, v in data["numeric"].items()},
                   data["vocab"], data["ids"])


def split_future(df: pd.DataFrame, target: str, missing: np.ndarray | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, future): the trailing rows of each series (sorted by id, ds) whose target
    is ``missing`` (default: null) are the future rows (covariates given for dates still to
    forecast); the rest is history."""
    if len(df) == 0:
        return df, df.iloc[0:0]
    missing = df[target].isna().to_numpy() if missing is None else np.asarray(missing)
    after = after_last_observed(df[ID], missing)
    return df[~after].reset_index(drop=True), df[after].reset_index(drop=True)


def after_last_observed(ids: pd.Series, missing: np.ndarray) -> np.ndarray:
    """Per row (sorted by series and ds): no observed value at or after it in its series.
    Counts the observed values from the end of each series backwards (vectorised)."""
    observed = pd.Series((~np.asarray(missing)).astype(np.int64)[::-1])
    later = observed.groupby(ids.to_numpy()[::-1], sort=False).cumsum().to_numpy()[::-1]
    return later == 0


def check_future(future: pd.DataFrame, ids: np.ndarray, expected_ds: np.ndarray,
                 columns: tuple[str, ...], horizon: int) -> pd.DataFrame:
    """The future rows for each series' next ``horizon`` steps, in panel order, every
    future covariate a float; a :class:`DataError` naming the series and dates for a
    missing row or value, a row given twice with different values, or a value that is
    not a finite number within float32 (text, 1e39: the model would forecast NaN)."""
    keys = pd.DataFrame({ID: np.repeat(ids, horizon), DS: expected_ds})
    if not columns:
        return keys
    lacking = [c for c in columns if c not in future.columns]
    if lacking:
        raise DataError(
            f"future covariate column(s) {lacking} are missing from the future rows",
            hint="pass them with --future PATH (unique_id, ds and these columns for the "
            "forecast dates) or as rows with an empty target after each series",
        )
    fut = future[[ID, DS, *columns]].copy()
    if len(fut):
        fut[DS] = fut[DS].astype(keys[DS].dtype)
    _check_repeated(fut, keys, columns)
    fut = fut.drop_duplicates([ID, DS], keep="last")
    merged = keys.merge(fut, on=[ID, DS], how="left", indicator=True)
    absent = merged["_merge"] != "both"
    bad = absent | merged[list(columns)].isna().any(axis=1)
    if bad.any():
        rows = merged[bad]
        raise DataError(
            f"future covariates {list(columns)} are missing or empty for "
            f"{int(bad.sum())} forecast step(s) of {rows[ID].nunique()} series: "
            f"{_where(rows)}{_unmatched(fut, keys)}",
            hint=f"supply a value of every future covariate for each of the {horizon} steps "
            "after the end of every series (in the --future file, or as rows with an empty "
            "target after each series)",
        )
    for col in columns:
        merged[col] = _numbers(merged, col)
    return merged.drop(columns="_merge")


def _where(rows: pd.DataFrame, column: str | None = None, quote: bool = True) -> str:
    """``A: 2018-01-01, 2018-02-01 (+3 more); B: ...`` (with ``column``'s value after each
    date, as repr or, ``quote`` False, as text): the series and dates of ``rows``, five
    series at most."""
    parts = []
    for sid, grp in rows.groupby(ID, sort=False):
        dates = ", ".join(
            str(d).removesuffix(" 00:00:00")
            + (f" ({v!r})" if quote else f" ({v})") * (column is not None)
            for d, v in zip(grp[DS].head(3), grp[column or DS].head(3), strict=True))
        more = f" (+{len(grp) - 3} more)" if len(grp) > 3 else ""
        parts.append(f"{sid}: {dates}{more}")
    return "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more series"
                                   if len(parts) > 5 else "")


def _unmatched(fut: pd.DataFrame, keys: pd.DataFrame) -> str:
    """A sentence on the given rows that match no forecast step (dates written another way,
    ids in another case), with one of them; empty when every row matched or none was
    given."""
    stray = fut.merge(keys, on=[ID, DS], how="left", indicator=True)
    stray = stray[stray["_merge"] == "left_only"]
    # a file covering more dates than the horizon is fine: only rows of unknown series, or
    # dates inside the horizon's span that miss its steps, are suspicious
    inside = stray[DS].between(keys[DS].min(), keys[DS].max())
    stray = stray[inside | ~stray[ID].isin(keys[ID])]
    if stray.empty:
        return ""
    first = stray.iloc[0]
    return (f" ({len(stray)} given future row(s) match no forecast step, e.g. "
            f"{first[ID]} at {str(first[DS]).removesuffix(' 00:00:00')}: check the ids and "
            "the dates of the future rows)")


def _check_repeated(fut: pd.DataFrame, keys: pd.DataFrame, columns: tuple[str, ...]) -> None:
    """A forecast step (of ``keys``) given twice in ``fut`` with different covariate values
    is a DataError (which one the model should see is not ours to guess); identical repeats
    are harmless. Nothing is merged unless some row repeats (the usual forecast)."""
    repeated = fut[fut.duplicated([ID, DS], keep=False)]
    if repeated.empty:
        return
    repeated = repeated.merge(keys, on=[ID, DS])  # the forecast's steps only
    if repeated.empty:
        return
    # values compared as numbers (1 and "1" agree); an empty one does not clash (the last
    # row is kept, and an empty value there is reported as missing)
    values = repeated[[ID, DS]].assign(**{c: pd.to_numeric(repeated[c], errors="coerce")
                                          for c in columns})
    differ = values.groupby([ID, DS], sort=False)[list(columns)].nunique()
    clash = differ[(differ > 1).any(axis=1)].reset_index()
    if len(clash):
        seen = values.merge(clash[[ID, DS]], on=[ID, DS]).groupby([ID, DS], sort=False)
        clash["values"] = [" vs ".join(f"{v[0]:g}" if len(v) == 1 else str(v)
                                       for v in g[list(columns)].itertuples(
                                           index=False, name=None)) for _, g in seen]
        raise DataError(
            f"future covariates: {len(clash)} forecast step(s) of {clash[ID].nunique()} "
            f"series are given twice with different values: "
            f"{_where(clash, 'values', quote=False)}",
            hint="give one row per series and date in the future rows (the --future file, "
            "or the rows with an empty target after each series)")


def _numbers(merged: pd.DataFrame, col: str) -> pd.Series:
    """``merged[col]`` as floats; a DataError naming the series, dates and values where one
    is text, infinite or beyond float32 (what the models compute in)."""
    values = pd.to_numeric(merged[col], errors="coerce").astype("float64")
    finite = np.isfinite(values.to_numpy()) & (values.abs().to_numpy() <= F32_MAX)
    if not finite.all():
        rows = merged[~finite]
        raise DataError(
            f"future covariate {col!r} is not a finite number within float32 (+-3.4e38) "
            f"for {len(rows)} forecast step(s) of {rows[ID].nunique()} series: "
            f"{_where(rows, col)}",
            hint=f"give {col!r} as numbers (encode a category as 0/1 columns, or declare "
            "it a static covariate if it does not change over time)")
    return values
