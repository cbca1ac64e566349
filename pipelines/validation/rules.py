"""The check catalogue: one :class:`Rule` per check, in two tables.

:data:`RULES` checks the keys and the target of every frame; :data:`COVARIATE_RULES` is
applied to each covariate column the pipeline declares. A rule says which column it is
about, how its per-row boolean is computed (True where the row passes), which Great
Expectations expectation checks it, what the user reads when it fails and how to fix it,
and how its example rows are picked. A new check is one entry in a table.

Most rules hand GE a helper column (``flag``) expected to be all True: the per-series rules
GE cannot express column-wide, and unique keys (on the sorted frame a repeat is a run of
equal rows, found in one pass where GE's compound-unique expectation builds a hash table of
every key). GE decides pass or fail and counts the offending rows; the rows shown to the
user are picked here with pandas from the same booleans.

Texts are templates: ``{name}`` fields are filled from the words of :func:`_words` (core
rules) or ``col`` / ``kind`` (covariate rules) when :func:`build_suite` binds the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.schema import DS, F32_MAX, ID, Y, is_integer_time
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.validation.facts import (
    FrameFacts,
    frame_facts,
    grid_examples,
    length_examples,
    row_examples,
)
from deepcast.pipelines.validation.limits import fits_float32
from deepcast.pipelines.validation.report import MAX_EXAMPLES

# GE expectations a rule can map to (class names in great_expectations.expectations)
NOT_NULL = "ExpectColumnValuesToNotBeNull"  # on ``column`` itself
IN_TRUE = "ExpectColumnValuesToBeInSet"  # on the helper column ``flag``, value set {True}
ROW_COUNT = "ExpectTableRowCountToBeBetween"  # on the table: at least one row

# Helper columns handed to GE next to unique_id / ds (each expected to be in {True}).
DS_PARSEABLE = "ds_parseable"
Y_IS_NUMBER = "y_is_number"
Y_IS_FINITE = "y_is_finite"
Y_FITS_F32 = "y_fits_float32"
Y_PRESENT = "y_present"
DS_INCREASING = "ds_increasing_within_series"
DS_ON_GRID = "ds_on_freq_grid"
DS_IN_RANGE = "forecast_dates_representable"
LONG_ENOUGH = "series_long_enough"
WINDOW_FITS = "some_series_fills_a_window"
F32 = f"{F32_MAX:.2g}"  # 3.4e+38
KEY_UNIQUE = "key_unique"

RowsOk = Callable[[FrameFacts, str | None], np.ndarray]
Examples = Callable[[FrameFacts, np.ndarray], list[dict]]


def _always(words: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    """One check: what it is about, how rows pass it, how GE checks it, what a user reads.

    ``ok(facts, column)`` gives per row True where the row passes; for an ``IN_TRUE`` rule
    that boolean is the helper column ``flag`` GE checks, otherwise it only picks the
    examples (computed when the check fails). ``when(words)`` says whether the rule applies
    (a covariate rule: to this column). String fields are templates until bound.
    """

    name: str  # unique key of the check (GE meta ``deepcast_check``)
    column: str | None  # the column the user is told about (None: the whole row / table)
    expectation: str  # NOT_NULL, IN_TRUE or ROW_COUNT
    ok: RowsOk
    gx_text: str  # the expectation's description in the GE suite and Data Docs
    message: str  # what failed, as the report says it
    hint: str  # how to fix it
    flag: str | None = None  # helper column GE checks (IN_TRUE rules)
    examples: Examples = row_examples  # up to MAX_EXAMPLES offending rows, as dicts
    when: Callable[[Mapping[str, Any]], bool] = _always

    def bind(self, words: Mapping[str, Any]) -> Rule:
        """This rule with its templates filled from ``words``."""
        filled = {f.name: getattr(self, f.name).format(**words) for f in fields(self)
                  if isinstance(getattr(self, f.name), str)}
        return replace(self, **filled)

    @property
    def gx_kwargs(self) -> dict[str, Any]:
        """Arguments of the GE expectation (besides its description)."""
        if self.expectation == ROW_COUNT:
            return {"min_value": 1}
        if self.expectation == IN_TRUE:
            return {"column": self.flag, "value_set": [True]}
        return {"column": self.column}


# The checks of every frame, in suite (and report) order.
RULES: tuple[Rule, ...] = (
    Rule("id_not_null", ID, NOT_NULL, lambda f, _: ~f.id_na,
         gx_text="unique_id must not be empty", message="unique_id must not be empty",
         hint="fill in the series identifier in these rows (or remove the rows)"),
    Rule("ds_not_null", DS, NOT_NULL, lambda f, _: ~f.ds_na | f.ds_invalid,
         gx_text="ds must not be empty", message="ds must not be empty",
         hint="fill in the time of these rows (or remove the rows)"),
    Rule("ds_parseable", DS, IN_TRUE, lambda f, _: ~f.ds_invalid, flag=DS_PARSEABLE,
         gx_text="ds must parse as {ds_kind}", message="ds could not be parsed as {ds_kind}",
         hint="{parse_hint}"),
    Rule("y_numeric", Y, IN_TRUE, lambda f, _: ~f.y_invalid, flag=Y_IS_NUMBER,
         gx_text="y must be a number", message="y must be a number (these cells hold text)",
         hint="fix the non-numeric cells (use '.' as decimal separator, no thousands "
         "separators or units) or leave them empty"),
    Rule("y_finite", Y, IN_TRUE, lambda f, _: ~np.isinf(f.y), flag=Y_IS_FINITE,
         gx_text="y must be finite (not inf or -inf)",
         message="y must be finite (not inf or -inf)",
         hint="replace the infinite values with real measurements (or leave them empty)"),
    Rule("y_float32", Y, IN_TRUE, lambda f, _: fits_float32(f.y), flag=Y_FITS_F32,
         gx_text=f"y must be within +-{F32} (float32)",
         message=f"y must be within +-{F32}, the float32 range the models compute in",
         hint="fix the exported values, or rescale the series (e.g. to thousands or "
         "millions of its unit)"),
    Rule("y_not_missing", Y, IN_TRUE, lambda f, _: ~np.isnan(f.y) | f.y_invalid,
         flag=Y_PRESENT, gx_text="{missing_desc}", message="{missing_desc}",
         hint="{missing_hint}"),
    # a flag per row instead of GE's compound-unique expectation: on the sorted frame a
    # repeat is a run of equal keys (no 10M-key hash table: 270 MB at 10M rows)
    Rule("unique_keys", None, IN_TRUE, lambda f, _: ~f.dup_rows, flag=KEY_UNIQUE,
         gx_text="each (unique_id, ds) pair must appear once",
         message="each (unique_id, ds) pair must appear only once",
         hint="remove or aggregate the duplicate rows (e.g. sum or average them) before "
         "export"),
    Rule("ds_increasing", DS, IN_TRUE, lambda f, _: f.inc_ok, flag=DS_INCREASING,
         gx_text="ds must increase within each series",
         message="ds must increase within each series (a repeated ds is not an increase)",
         hint="remove the repeated timestamps of the series"),
    Rule("ds_on_grid", DS, IN_TRUE, lambda f, _: f.grid_ok, flag=DS_ON_GRID,
         gx_text="ds must be one {freq} step after the previous row of its series",
         message="ds must be one {freq} step after the previous row of its series "
         "{grid_what}",
         hint="{grid_fix}; if most rows fail, data.freq does not match the data{freq_hint}",
         examples=grid_examples),
    Rule("ds_in_range", DS, IN_TRUE, lambda f, _: f.range_ok, flag=DS_IN_RANGE,
         gx_text="{range_desc}", message="{range_desc}", hint="{range_hint}"),
    Rule("series_length", ID, IN_TRUE, lambda f, _: ~f.short_first, flag=LONG_ENOUGH,
         gx_text="every series must have at least {min_len} rows",
         message="every series must have at least {min_len} rows ({geometry})",
         hint="drop short series with data.short_series: drop, or lower features.lookback, "
         "features.horizon or evaluation.test_size",
         examples=length_examples),
    Rule("lookback_fits", ID, IN_TRUE, lambda f, _: f.window_ok, flag=WINDOW_FITS,
         gx_text="some series must have features.lookback + features.horizon rows",
         message="features.lookback {lookback} + features.horizon {horizon} = {window} rows, "
         "but the longest series has {longest} rows: no series fills one input window",
         hint="{window_hint}", examples=length_examples, when=lambda w: w["window"] > 0),
    Rule("not_empty", None, ROW_COUNT, lambda f, _: np.ones(len(f.frame), dtype=bool),
         gx_text="{empty_desc}", message="{empty_desc}", hint="{empty_hint}"),
)


# rules about the panel as a whole: a shard of it may fail one (all its series too short or
# dropped) while the panel passes (validate_shards merges them: the panel passes if a shard
# does)
PANEL_RULES = frozenset({"lookback_fits", "not_empty"})


def _present(f: FrameFacts, col: str | None) -> np.ndarray:
    return f.frame[col].notna().to_numpy()


def _finite_number(f: FrameFacts, col: str | None) -> np.ndarray:
    """Empty cells pass (the not-null rule reports them); text, inf and values beyond
    float32 fail."""
    values = f.frame[col]
    as_num = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    number = ~np.isnan(as_num) | ~values.notna().to_numpy()
    return number & ~np.isinf(as_num) & fits_float32(as_num)


def _constant(f: FrameFacts, col: str | None) -> np.ndarray:
    nunique = f.frame[col].groupby(f.frame[ID], sort=False).transform("nunique", dropna=False)
    return nunique.fillna(1).to_numpy() <= 1


# Applied to each covariate column ``col`` of kind ``kind`` (static, past or future).
COVARIATE_RULES: tuple[Rule, ...] = (
    Rule("{col}_not_null", "{col}", NOT_NULL, _present,
         gx_text="{kind} covariate {col} must not be empty",
         message="{kind} covariate {col} must not be empty",
         hint="fill in {col} for these rows (a {kind} covariate is needed at every step)"),
    Rule("{col}_numeric", "{col}", IN_TRUE, _finite_number, flag="{col}__numeric",
         gx_text="{col} must be a finite number",
         message=f"{{kind}} covariate {{col}} must be a finite number within +-{F32} "
         "(float32)",
         hint="fix the non-numeric cells of {col}, or declare it under data.categorical "
         "(statics only)",
         when=lambda w: w["numeric"]),
    Rule("{col}_constant", "{col}", IN_TRUE, _constant, flag="{col}__constant",
         gx_text="static {col} must be constant within a series",
         message="static covariate {col} must have one value per series",
         hint="make {col} constant within each series, or declare it under data.past / "
         "data.future if it changes over time",
         when=lambda w: w["kind"] == "static"),
)


@dataclass(frozen=True)
class Suite:
    """The bound rules of one run, the facts they read and the frame GE validates."""

    rules: list[Rule]
    facts: FrameFacts
    frame: pd.DataFrame  # keys, ds as GE sees it, helper columns

    def examples(self, rule: Rule) -> list[dict]:
        """Up to MAX_EXAMPLES rows that break ``rule`` (call it only when it failed)."""
        ok = self.frame[rule.flag].to_numpy() if rule.flag else rule.ok(self.facts, rule.column)
        return rule.examples(self.facts, np.flatnonzero(~ok)[:MAX_EXAMPLES])


def build_suite(frame: pd.DataFrame, cfg: PipelineConfig, dropped: dict[str, int],
                n_input_series: int, min_len: int, forecast: bool = False) -> Suite:
    """The suite's rules, bound to this frame and config, and the frame GE validates."""
    f = cfg.features
    window = 0 if forecast or cfg.data.short_series != "pad" else f.lookback + f.horizon
    facts = frame_facts(frame, cfg.data.freq, min_len, f.horizon, window)
    words = _words(frame, cfg, dropped, n_input_series, min_len, forecast)
    words |= _limit_words(cfg, facts, window)
    rules = [rule.bind(words) for rule in RULES if rule.when(words)]
    rules += [rule.bind(cov) for cov in _covariates(cfg) for rule in COVARIATE_RULES
              if rule.when(cov)]
    columns: dict[str, Any] = {ID: frame[ID], DS: facts.ds_seen}
    for rule in rules:
        if rule.flag:
            columns[rule.flag] = rule.ok(facts, rule.column)
        elif rule.column is not None and rule.column not in columns:
            columns[rule.column] = frame[rule.column]
    # copy=False: no consolidated copy of the helper columns (80 MB at 10M rows)
    return Suite(rules, facts, pd.DataFrame(columns, copy=False))


def _covariates(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """Words of each covariate column: ``col``, ``kind`` and whether it must be numeric
    (past / future, and statics not categorical when data.categorical is given)."""
    data = cfg.data
    categorical = set(data.categorical or [])
    kinds = ([(c, "static") for c in data.static] + [(c, "past") for c in data.past]
             + [(c, "future") for c in data.future])
    return [{"col": col, "kind": kind,
             "numeric": kind != "static" or (data.categorical is not None
                                             and col not in categorical)}
            for col, kind in kinds]


def _words(frame: pd.DataFrame, cfg: PipelineConfig, dropped: dict[str, int],
           n_input_series: int, min_len: int, forecast: bool) -> dict[str, Any]:
    """The values the core rules' templates name."""
    data = cfg.data
    integer = is_integer_time(data.freq)
    interp = data.missing_y == "interpolate"
    limit = f"data.max_gap {data.max_gap}"
    geometry = _geometry(cfg, min_len, forecast)
    empty = dropped and not len(frame)
    return {
        "ds_kind": "an integer step" if integer else "a timestamp",
        "parse_hint": (
            "write ds as whole numbers (1, 2, 3, ...) or set data.freq to a pandas alias "
            "if ds holds dates"
            if integer
            else "write ds in one format for the whole column, ISO 8601 preferred "
            "(2024-01-31 or 2024-01-31T13:00:00)"),
        "missing_desc": (
            "y must have at least one value in each series (missing values are "
            "interpolated, but not in a series with no value at all"
            + (f", nor holes longer than {limit} values)" if data.max_gap else ")")
            if interp else "y must not be missing"),
        "missing_hint": (
            "remove series that have no y values at all"
            + (f"; fill long holes at the source, or raise {limit}" if data.max_gap else "")
            if interp
            else "fill in the missing values, or set data.missing_y: interpolate to fill them "
            "linearly within each series"),
        "freq": _fmt_freq(data.freq),
        **_grid_words(cfg),
        "freq_hint": freq_hint(frame, data.freq),
        "min_len": min_len,
        "geometry": geometry,
        "empty_desc": (
            f"no series is left to forecast: all {n_input_series} series have fewer than "
            f"{min_len} rows ({geometry}) and were dropped"
            if empty else "the data must contain at least one row"),
        "empty_hint": (
            "provide longer series, or lower features.lookback, features.horizon, "
            "training.val_size or evaluation.test_size"
            if dropped else "check that the data file has rows"),
    }


def _limit_words(cfg: PipelineConfig, facts: FrameFacts, window: int) -> dict[str, Any]:
    """The values the range and window rules name."""
    f, freq = cfg.features, cfg.data.freq
    longest = int(facts.lengths.max()) if len(facts.lengths) else 0
    steps = f"last ds + features.horizon {f.horizon} steps of {_fmt_freq(freq)}"
    room = longest - f.horizon
    return {
        "lookback": f.lookback, "horizon": f.horizon, "window": window, "longest": longest,
        "window_hint": (f"lower features.lookback to at most {room} (the longest series "
                        "minus features.horizon), or provide longer series" if room >= 1
                        else "provide longer series, or lower features.horizon"),
        "range_desc": (
            f"the forecast dates of each series ({steps}) must fit in a 64-bit integer"
            if is_integer_time(freq) else
            f"the forecast dates of each series ({steps}) must end by 9999-12-31, and ds "
            "start on or after 0001-01-01: the dates Python and the plots can hold"),
        "range_hint": "fix the timestamps of these series (a placeholder such as "
        "9999-12-31 is no date to forecast from), or remove the series",
    }


def _grid_words(cfg: PipelineConfig) -> dict[str, str]:
    """What the grid rule says: gaps are filled under data.fill_gaps, up to max_gap."""
    data = cfg.data
    if data.fill_gaps == "none":
        return {"grid_what": "(rows after a gap or off the grid)",
                "grid_fix": "add the missing periods, or fill them with data.fill_gaps: "
                "interpolate, zero or ffill (an empty y is fine with data.missing_y: "
                "interpolate)"}
    if data.max_gap is None:
        return {"grid_what": "(rows off the grid: gaps on it are filled, data.fill_gaps)",
                "grid_fix": "fix the ds of these rows (they are not a whole number of steps "
                "after the previous one)"}
    return {"grid_what": f"(gaps longer than data.max_gap {data.max_gap} missing steps are "
            "not filled; or rows off the grid)",
            "grid_fix": f"fill the long gaps at the source, or raise data.max_gap "
            f"({data.max_gap}); rows off the grid need their ds fixed"}


def _geometry(cfg: PipelineConfig, min_len: int, forecast: bool) -> str:
    """Where the shortest allowed series length comes from, in config keys."""
    if forecast:
        return f"{min_len} point(s) of history, needed to forecast"
    if cfg.data.short_series == "pad":
        return (f"features.horizon {cfg.features.horizon} + training.val_size "
                f"{cfg.val_size} + evaluation.test_size {cfg.evaluation.test_size} + 1, "
                "with short series padded")
    return (f"features.lookback {cfg.features.lookback} + features.horizon "
            f"{cfg.features.horizon} + training.val_size {cfg.val_size} + "
            f"evaluation.test_size {cfg.evaluation.test_size}")


def _fmt_freq(freq: str | int) -> str:
    return f"`{freq}`"


def freq_hint(frame: pd.DataFrame, freq: str | int) -> str:
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
