"""What validation found: one record per check and the report, as data and as text.

Plain dataclasses with no framework behind them, so a caller can read a report (or build
one in a test) without Great Expectations. ``validation.json`` is :meth:`ValidationReport.to_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MAX_EXAMPLES = 5  # offending rows kept per check
GREAT_EXPECTATIONS = "great_expectations"  # ValidationReport.checked_by: GE ran the suite
# ... or every check passed deepcast's pandas screen of the same rules, so GE did not run
SCREENED = "deepcast screen (every check passed; Great Expectations runs when one fails)"
FILLED_SHOWN = 5  # filled series listed in the summary (validation.json has them all)


@dataclass(frozen=True)
class ExpectationResult:
    """Outcome of one check of the suite, with at most :data:`MAX_EXAMPLES` rows that broke it.

    deepcast's counterpart of kedro's ``CheckFailure``: ``description`` is the message,
    ``expectation`` the GE check, ``unexpected_count`` the failure count and ``examples``
    the failure examples; passing checks are kept too (``success`` True, no examples).
    """

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int
    description: str
    hint: str
    examples: list[dict] = field(default_factory=list)
    check: str = ""  # the rule's name (validation/rules.py), the same in every shard

    def __post_init__(self) -> None:
        if len(self.examples) > MAX_EXAMPLES:
            raise ValueError(f"{len(self.examples)} examples for {self.expectation}; "
                             f"a check keeps at most {MAX_EXAMPLES}")


@dataclass
class ValidationReport:
    """Everything validation found, as data (``to_dict``) and as text (``summary``)."""

    success: bool
    source: str
    n_rows: int
    n_series: int
    results: list[ExpectationResult]
    dropped_series: dict[str, int]
    interpolated: int
    report_path: str | None = None
    docs_path: str | None = None
    notes: list[str] = field(default_factory=list)
    quarantined: int = 0  # rows moved aside under data.bad_rows: quarantine
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None
    freq: str | int | None = None  # the grid checked (data.freq, ``auto`` resolved)
    freq_inferred: str | None = None  # how data.freq: auto was resolved (summary line)
    gaps_filled: int = 0  # rows inserted on the grid (data.fill_gaps)
    # per series with inserted or interpolated values: series, points, longest_run, first,
    # last (filled ds), share (of the series); the most filled first
    filled_series: list[dict] = field(default_factory=list)
    n_stale_series: int = 0  # series ending long before the panel's latest ds
    stale_series: list[dict] = field(default_factory=list)  # series, last_ds, steps_behind
    warnings: list[str] = field(default_factory=list)  # said in the summary, never failing
    # rows with an empty y after their series' last value, left out (missing_y: interpolate)
    trailing_rows: int = 0
    trailing_series: int = 0
    checked_by: str = GREAT_EXPECTATIONS  # who computed the verdicts (SCREENED: no GE run)

    def failures(self) -> list[ExpectationResult]:
        """The expectations that failed, in suite order."""
        return [r for r in self.results if not r.success]

    def summary(self) -> str:
        """Human-readable multi-line summary: verdict, failed checks with rows, hints."""
        failed = self.failures()
        verdict = "PASSED" if self.success else "FAILED"
        checks = (
            f"all {len(self.results)} checks passed"
            if not failed
            else f"{len(failed)} of {len(self.results)} checks failed"
        )
        lines = [
            f"Validation of {self.source}: {verdict} - {self.n_rows} rows, "
            f"{self.n_series} series, {checks}."
        ]
        if self.freq_inferred:
            lines.append(self.freq_inferred + ".")
        lines += self._cleaning_lines()
        for res in failed:
            lines += _failure_lines(res)
        lines += [f"warning: {w}" for w in self.warnings]
        for note in self.notes:
            lines.append(f"note: {note}")
        if self.report_path:
            lines.append(f"Full report: {self.report_path}")
        if self.docs_path:
            lines.append(f"Data Docs: {self.docs_path}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain JSON-able data."""
        return asdict(self)

    def _cleaning_lines(self) -> list[str]:
        """What cleaning did before the checks: dropped, quarantined, interpolated."""
        lines = []
        if self.dropped_series:
            shown = ", ".join(
                f"{k} ({v} row{'' if v == 1 else 's'})"
                for k, v in list(self.dropped_series.items())[:10]
            )
            more = len(self.dropped_series) - 10
            lines.append(
                f"Dropped {len(self.dropped_series)} series too short to train and score: "
                f"{shown}{f' and {more} more' if more > 0 else ''}."
            )
        if self.quarantined:
            reasons = "; ".join(f"{k}: {v}" for k, v in self.quarantine_reasons.items())
            where = self.quarantine_path or "not written: no report folder"
            lines.append(f"Quarantined {self.quarantined} row(s) ({reasons}): {where}.")
        if self.gaps_filled:
            lines.append(f"Inserted {self.gaps_filled} missing step(s) into the series' "
                         "grids (data.fill_gaps).")
        if self.interpolated:
            lines.append(
                f"Interpolated {self.interpolated} missing y value(s) within their series."
            )
        return lines + self._filled_lines()

    def _filled_lines(self) -> list[str]:
        """Per series: how much was filled in, the longest run, the first and last date."""
        if not self.filled_series:
            return []
        lines = [f"Filled-in values in {len(self.filled_series)} series:"]
        for r in self.filled_series[:FILLED_SHOWN]:
            lines.append(f"    series {r['series']}: {r['points']} point(s), "
                         f"{100 * r['share']:.3g} % of the series, longest run "
                         f"{r['longest_run']}, from {r['first']} to {r['last']}")
        more = len(self.filled_series) - FILLED_SHOWN
        if more > 0:
            lines.append(f"    ... and {more} more series (validation.json lists them)")
        return lines


def _failure_lines(res: ExpectationResult) -> list[str]:
    """One failed check: what, how many, the example rows, the fix (blank line first)."""
    unit = "series" if any("length" in ex for ex in res.examples) else "row(s)"
    count = f" - {res.unexpected_count} {unit}" if res.unexpected_count else ""
    lines = ["", f"FAILED: {res.description}{count} [{res.expectation}]"]
    for ex in res.examples:
        lines.append("    " + format_example(ex))
    if res.unexpected_count > len(res.examples) and res.examples:
        lines.append(f"    ... and {res.unexpected_count - len(res.examples)} more")
    lines.append(f"  fix: {res.hint}")
    return lines


def format_example(ex: dict) -> str:
    """One example row as the summary shows it: row, series, ds, (previous ds), y, (length)."""
    row = f"row {ex.get('row')}"
    if ex.get("shard"):  # a sharded run's example: rows count within their shard
        row += f" of {str(ex['shard']).split(' (')[0]}"
    parts = [row, f"series {ex.get('unique_id') or '(empty)'}"]
    ds_empty = "(unparseable)" if ex.get("ds_invalid") else "(empty)"
    parts.append(f"ds {ex.get('ds') or ds_empty}")
    if "previous_ds" in ex:
        parts.append(f"previous ds {ex['previous_ds'] or '(empty)'}")
    y = ex.get("y")
    y_empty = "(not a number)" if ex.get("y_invalid") else "(empty)"
    parts.append(f"y {y_empty if y is None else y}")
    if "length" in ex:
        parts.append(f"length {ex['length']}")
    return ", ".join(parts)


def trailing_warning(rows: int, series: int) -> str | None:
    """The warning for rows left out after their series' last value (None: none were)."""
    if not rows:
        return None
    return (f"{rows} row(s) after the last observed y of {series} series have an empty y "
            "and were left out: data.missing_y: interpolate fills between observed values, "
            "not after the last one (rows of future covariates belong in `deepcast "
            "forecast`)")
