"""Validate stage: check a coerced long frame with one Great Expectations suite.

:func:`validate_long_frame` sorts the frame, resolves ``data.freq: auto``
(:mod:`deepcast.pipelines.validation.freq`), cleans it as the pipeline's ``data`` settings
ask (:mod:`deepcast.features.cleaning` and :mod:`deepcast.features.gaps`: quarantine bad
rows, fill gaps in the grid, drop short series, interpolate missing targets), then runs
the check catalogue (:mod:`deepcast.pipelines.validation.rules`) as one GE suite
(:mod:`deepcast.pipelines.validation.gx`, the only module that imports Great
Expectations, lazily, so importing this module is cheap), adds the warnings that never
fail a run (:mod:`deepcast.pipelines.validation.panel`: series mostly filled in, series
that stopped long ago) and writes the report files
(:mod:`deepcast.pipelines.validation.writers`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepcast.features.cleaning import (
    Trailing,
    canonical,
    drop_short,
    drop_trailing_missing,
    inserted_rows,
    interpolate,
    prepare,
    quarantine,
)
from deepcast.features.gaps import fill_gaps, fill_summary
from deepcast.features.schema import ID, Y, release_arrow_memory, sort_long_frame
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.ingest import check_covariate_columns
from deepcast.pipelines.validation import gx
from deepcast.pipelines.validation.freq import freq_line, resolve_freq
from deepcast.pipelines.validation.panel import (
    MAX_LISTED,
    fill_warning,
    latest_ds,
    stale_series,
    stale_warning,
)
from deepcast.pipelines.validation.report import (
    SCREENED,
    ExpectationResult,
    ValidationReport,
    trailing_warning,
)
from deepcast.pipelines.validation.rules import Suite, build_suite
from deepcast.pipelines.validation.screen import screen
from deepcast.pipelines.validation.writers import write_quarantine, write_reports

__all__ = ["ExpectationResult", "ValidationReport", "report_dir_for", "resolved_config",
           "validate_long_frame"]


@dataclass
class _Cleaned:
    """The sorted frame after cleaning, and what cleaning did to it."""

    frame: pd.DataFrame
    rejected: pd.DataFrame | None  # quarantined rows (data.bad_rows: quarantine)
    dropped: dict[str, int]  # short series dropped: {id: rows}
    n_input_series: int  # series before short ones were dropped
    interpolated: int  # missing y values filled by interpolation
    inserted: int  # missing steps inserted on the grid (data.fill_gaps)
    filled: list[dict]  # per series: what was filled in (fill_summary)
    trailing: Trailing = Trailing(0, 0)  # empty y after a series' last value: left out


def validate_long_frame(
    df: pd.DataFrame,
    cfg: PipelineConfig,
    report_dir: str | Path | None = None,
    min_length: int | None = None,
    data_docs: bool | None = None,
    screen_first: bool = False,
    panel: bool = True,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Validate a coerced long frame; return (clean canonical frame, report).

    ``min_length`` overrides the shortest allowed series (default: lookback + horizon +
    test_size, what training needs; forecasting needs only the model's lookback).
    ``data_docs`` builds the GE Data Docs HTML beside ``validation.json`` (None: when
    validation fails, or always under ``data.data_docs: always``). ``screen_first``
    computes the checks' verdicts with pandas first and runs the GE suite only when one
    fails (or Data Docs are asked for always): what ``deepcast forecast`` does
    (:mod:`deepcast.pipelines.validation.screen`); ``report.checked_by`` says which ran.
    ``panel`` False: ``df`` is a shard of a panel, whose stale series the caller finds
    (:func:`stale_check` on every shard's last dates).

    The frame is sorted by (unique_id, ds) first. ``data.freq: auto`` is inferred from
    it: ``report.freq`` is the step checked, for the config of every later stage
    (:func:`resolved_config`). Data problems never raise: they make ``report.success``
    False (the frame is still returned, sorted). :class:`DataError` is raised only when
    no frequency can be inferred or Great Expectations itself cannot run. ``n_rows`` /
    ``n_series`` count the returned frame (after short series were dropped).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    data = cfg.data
    min_len = min_length or cfg.min_length
    source = str(df.attrs.get("source") or data.path or "data")

    check_covariate_columns(df.columns, data, source)
    frame = sort_long_frame(prepare(df))
    cfg, inferred = resolve_freq(cfg, frame)
    cleaned = _clean(frame, cfg, min_len)
    suite = build_suite(cleaned.frame, cfg, cleaned.dropped, cleaned.n_input_series, min_len,
                        forecast=min_length is not None)
    suite_name = f"{cfg.name}_long_frame"
    outcomes, ge_result = _verdicts(suite, suite_name,
                                    screen_first and data.data_docs != "always")
    clean = canonical(cleaned.frame)
    report = _report(clean, cleaned, _results(suite, outcomes), source, cfg, panel)
    if ge_result is None:
        report.checked_by = SCREENED
    if inferred is not None:
        report.freq_inferred = freq_line(inferred)
    if report_dir is not None:
        if report.quarantined:
            report.quarantine_path = write_quarantine(cleaned.rejected, Path(report_dir))
        if data_docs is None:
            data_docs = data.data_docs == "always" or not report.success
        write_reports(report, Path(report_dir), ge_result, suite.rules, suite_name, data_docs)
    release_arrow_memory()
    return clean, report


def _verdicts(suite: Suite, suite_name: str, screen_first: bool
              ) -> tuple[dict[str, gx.Outcome], object | None]:
    """({rule: outcome}, GE's suite result): the GE suite's, or with ``screen_first`` the
    pandas screen's when every check passes (no GE result then)."""
    if screen_first:
        outcomes = screen(suite.frame, suite.rules)
        if all(o.success for o in outcomes.values()):
            return outcomes, None
    return gx.run_suite(suite.frame, suite.rules, suite_name)


def _clean(frame: pd.DataFrame, cfg: PipelineConfig, min_len: int) -> _Cleaned:
    """Quarantine / fill gaps / drop short series / interpolate the sorted frame as
    ``cfg.data`` asks (gaps first: a series is as long as its filled grid)."""
    data = cfg.data
    rejected = None
    if data.bad_rows == "quarantine":
        frame, rejected = quarantine(frame)
    trailing = Trailing(0, 0)
    if data.missing_y == "interpolate":  # nothing after a series' last value to fill from
        # (before fill_gaps: a step it inserts there would become a made-up last value)
        frame, trailing = drop_trailing_missing(frame)
    inserted = 0
    if data.fill_gaps != "none":
        frame, inserted = fill_gaps(frame, data.freq, data.fill_gaps, data.max_gap)

    dropped: dict[str, int] = {}
    n_input_series = int(frame[ID].nunique())
    if data.short_series in ("drop", "pad"):
        frame, dropped = drop_short(frame, min_len)

    filled = inserted_rows(frame) & frame[Y].notna().to_numpy()
    interpolated = 0
    if "interpolate" in (data.missing_y, data.fill_gaps):
        frame, by_line = interpolate(frame, data.max_gap,
                                     original=data.missing_y == "interpolate")
        interpolated = int(by_line.sum())
        filled |= by_line
    return _Cleaned(frame, rejected, dropped, n_input_series, interpolated, inserted,
                    fill_summary(frame, filled), trailing)


def _report(clean: pd.DataFrame, cleaned: _Cleaned, results: list[ExpectationResult],
            source: str, cfg: PipelineConfig, panel: bool = True) -> ValidationReport:
    """The report of one run: the checks, what cleaning did, the warnings."""
    report = ValidationReport(
        success=all(r.success for r in results), source=source, n_rows=len(clean),
        n_series=int(clean[ID].nunique()), results=results, dropped_series=cleaned.dropped,
        interpolated=cleaned.interpolated, freq=cfg.data.freq, gaps_filled=cleaned.inserted,
        filled_series=cleaned.filled[:MAX_LISTED])
    rejected = cleaned.rejected
    if rejected is not None and len(rejected):
        report.quarantined = len(rejected)
        report.quarantine_reasons = rejected["reason"].value_counts(sort=False).to_dict()
    report.warnings += [w for w in [fill_warning(cleaned.filled)] if w]
    # (a quarantined bad y at a series' end is one of them: its y is empty there)
    report.trailing_rows, report.trailing_series = cleaned.trailing
    if panel:  # a shard's counts are summed into the panel's one warning by merge_reports
        report.warnings += [w for w in [trailing_warning(*cleaned.trailing)] if w]
        stale_check(report, clean, cfg)
    return report


def stale_check(report: ValidationReport, clean: pd.DataFrame, cfg: PipelineConfig) -> None:
    """Record in ``report`` the series of ``clean`` (sorted by series and ds; the last
    rows of each series are enough) that end long before the panel's latest ds."""
    behind = max(cfg.features.horizon, cfg.data.season_length)
    stale = stale_series(clean, cfg.data.freq, behind)
    report.n_stale_series, report.stale_series = len(stale), stale[:MAX_LISTED]
    why = (f"{behind} steps (the larger of features.horizon {cfg.features.horizon} and "
           f"data.season_length {cfg.data.season_length})")
    warning = stale_warning(stale, report.n_series, why, latest_ds(clean))
    report.warnings += [warning] if warning else []


def _results(suite: Suite, outcomes: dict[str, gx.Outcome]) -> list[ExpectationResult]:
    """One result per rule, in suite order, with example rows for the failed ones."""
    results = []
    for rule in suite.rules:
        outcome = outcomes[rule.name]
        results.append(
            ExpectationResult(
                expectation=outcome.expectation,
                column=rule.column,
                success=outcome.success,
                unexpected_count=outcome.unexpected_count,
                description=rule.message,
                hint=rule.hint,
                examples=[] if outcome.success else suite.examples(rule),
                check=rule.name,
            )
        )
    return results


def resolved_config(cfg: PipelineConfig, report: ValidationReport) -> PipelineConfig:
    """``cfg`` with ``data.freq`` as validation checked it (``auto`` resolved): the config
    the stages after validation read."""
    if report.freq is None or report.freq == cfg.data.freq:
        return cfg
    return cfg.with_freq(report.freq)


def report_dir_for(cfg: PipelineConfig, report_dir: str | Path | None = None) -> Path:
    """Where a validation report goes: ``report_dir`` or ./mlruns/validation/NAME/STAMP."""
    if report_dir:
        return Path(report_dir)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return Path.cwd() / "mlruns" / "validation" / cfg.name / stamp
