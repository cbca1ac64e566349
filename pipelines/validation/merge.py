"""One validation report from the reports of a panel's shards (validated in parallel).

Counts add up exactly (rows, series, failures per check, quarantined, filled, interpolated);
each check keeps its first :data:`MAX_EXAMPLES` example rows in shard order, each naming its
shard; dropped, filled and stale series are concatenated; quarantine files are concatenated
into one. Row numbers in examples and quarantine files count within the shard's rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd

from deepcast.pipelines.validation.report import (
    GREAT_EXPECTATIONS,
    MAX_EXAMPLES,
    SCREENED,
    ExpectationResult,
    ValidationReport,
    trailing_warning,
)
from deepcast.pipelines.validation.rules import PANEL_RULES

MAX_LISTED = 100  # filled / stale series kept in the merged report, as a single run keeps


def merge_reports(reports: list[ValidationReport], labels: list[str], source: str,
                  whole_panel: bool = False) -> ValidationReport:
    """The panel's report from its shards' (``labels`` name the shards, in order).
    ``whole_panel``: the panel's verdict (what one process would say of all the rows): a
    check of :data:`PANEL_RULES` passes when it passes in some shard; else every shard
    must pass every check (a shard whose rows cannot be used fails the run)."""
    first = reports[0]
    results = _merge_checks(reports, labels, whole_panel)
    failing = {_key(r) for r in results if not r.success}
    failed = [label for label, r in zip(labels, reports, strict=True)
              if not r.success and (not whole_panel or any(
                  _key(c) in failing for c in r.results if not c.success))]
    merged = ValidationReport(
        success=not failed and not failing, source=source,
        n_rows=sum(r.n_rows for r in reports), n_series=sum(r.n_series for r in reports),
        results=results,
        dropped_series={k: v for r in reports for k, v in r.dropped_series.items()},
        interpolated=sum(r.interpolated for r in reports),
        quarantined=sum(r.quarantined for r in reports),
        quarantine_reasons=dict(sum((Counter(r.quarantine_reasons) for r in reports),
                                    Counter())),
        freq=first.freq, freq_inferred=first.freq_inferred,
        gaps_filled=sum(r.gaps_filled for r in reports),
        filled_series=_most(reports, "filled_series", "points"),
        n_stale_series=sum(r.n_stale_series for r in reports),
        stale_series=_most(reports, "stale_series", "steps_behind"),
        checked_by=SCREENED if all(r.checked_by == SCREENED for r in reports)
        else GREAT_EXPECTATIONS)
    merged.warnings = _unique(f"{label}: {w}" for label, r in zip(labels, reports, strict=True)
                              for w in r.warnings)
    merged.trailing_rows = sum(r.trailing_rows for r in reports)
    merged.trailing_series = sum(r.trailing_series for r in reports)
    merged.warnings += [w for w in [trailing_warning(merged.trailing_rows,
                                                     merged.trailing_series)] if w]
    merged.notes = _unique(n for r in reports for n in r.notes)
    if failed:
        merged.notes.append(f"{len(failed)} of {len(reports)} shards failed validation: "
                            + "; ".join(failed[:5]) + (" ..." if len(failed) > 5 else ""))
    merged.notes.append(f"validated in {len(reports)} shards of whole series; example rows "
                        "and quarantine rows are numbered within their shard")
    return merged


def merge_quarantine(paths: list[str], labels: list[str], report_dir: Path) -> str | None:
    """One quarantine file from the shards' (a ``shard`` column added), or None."""
    from deepcast.pipelines.validation.writers import QUARANTINE_FILE, write_text

    parts = [pd.read_csv(p, dtype=str, keep_default_na=False).assign(shard=label)
             for p, label in zip(paths, labels, strict=True) if p]
    if not parts:
        return None
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir.resolve() / QUARANTINE_FILE
    write_text(path, pd.concat(parts, ignore_index=True).to_csv(index=False))
    return str(path)


def _key(res: ExpectationResult) -> tuple:
    """A check's identity across shards: its rule (older reports: expectation, column and
    message)."""
    return (res.check,) if res.check else (res.expectation, res.column, res.description)


def _merge_checks(reports: list[ValidationReport], labels: list[str], whole_panel: bool
                  ) -> list[ExpectationResult]:
    """One result per check (matched by :func:`_key`: several rules share an expectation
    type and column), in first-seen order."""
    by_key: dict[tuple, list[tuple[str, ExpectationResult]]] = {}
    for label, report in zip(labels, reports, strict=True):
        for res in report.results:
            by_key.setdefault(_key(res), []).append((label, res))
    return [_merge_check(pairs, whole_panel and pairs[0][1].check in PANEL_RULES)
            for pairs in by_key.values()]


def _merge_check(pairs: list[tuple[str, ExpectationResult]], any_passes: bool
                 ) -> ExpectationResult:
    """One check over all shards: failures summed, the first examples kept; with
    ``any_passes`` (a panel rule), it passes as a whole when it passes in some shard."""
    results = [r for _, r in pairs]
    if any_passes and any(r.success for r in results):
        head = next(r for r in results if r.success)
        return replace(head, examples=[])
    examples = [{**ex, "shard": label} for label, r in pairs for ex in r.examples
                ][:MAX_EXAMPLES]
    head = next((r for r in results if not r.success), results[0])
    return ExpectationResult(
        expectation=head.expectation, column=head.column,
        success=all(r.success for r in results),
        unexpected_count=sum(r.unexpected_count for r in results),
        description=head.description, hint=head.hint, examples=examples, check=head.check)


def _most(reports: list[ValidationReport], name: str, key: str) -> list[dict]:
    rows = [row for r in reports for row in getattr(r, name)]
    return sorted(rows, key=lambda row: -row[key])[:MAX_LISTED]


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
