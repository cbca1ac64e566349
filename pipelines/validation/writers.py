"""The files validation leaves in its report folder, each written atomically.

``validation.json`` (the report as data), ``quarantine.csv`` (rows moved aside under
``data.bad_rows: quarantine``) and, through the GE adapter, the Data Docs HTML.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.features.schema import DS, DS_TEXT, FLAG_COLUMNS, ID, ROW, Y_TEXT, Y
from deepcast.pipelines.validation import gx
from deepcast.pipelines.validation.report import ValidationReport
from deepcast.pipelines.validation.rules import Rule

REPORT_FILE = "validation.json"
QUARANTINE_FILE = "quarantine.csv"


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temp file in the same folder + os.replace)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as indented JSON, atomically (non-JSON values as their str)."""
    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_quarantine(rejected: pd.DataFrame, report_dir: Path) -> str:
    """The rejected rows as the source had them (row number, values, reason), atomically."""
    out = rejected.sort_values(ROW, kind="stable").rename(columns={ROW: "row"})
    if DS_TEXT in out.columns:
        out[DS] = out[DS].astype("object").where(out[DS_TEXT].isna(), out[DS_TEXT])
    if Y_TEXT in out.columns:
        out[Y] = out[Y].astype("object").where(out[Y_TEXT].isna(), out[Y_TEXT])
    keep = ["row", ID, DS, Y, *[c for c in out.columns if c not in (
        "row", ID, DS, Y, "reason", "kept_row", *FLAG_COLUMNS)], "reason", "kept_row"]
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / QUARANTINE_FILE
    write_text(path, out[keep].to_csv(index=False))
    return str(path)


def write_reports(
    report: ValidationReport,
    report_dir: Path,
    result: Any,
    rules: list[Rule],
    suite_name: str,
    data_docs: bool = True,
) -> None:
    """validation.json, plus GE Data Docs under ``report_dir`` when ``data_docs`` (docs
    failures are noted, never fatal). Sets the report's ``report_path`` / ``docs_path``."""
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    if data_docs:
        try:
            report.docs_path = gx.build_data_docs(report_dir, result, rules, suite_name)
        except Exception as exc:  # Data Docs are a bonus: never lose the JSON for them
            report.notes.append(f"Data Docs could not be built: {type(exc).__name__}: {exc}")
    path = report_dir / REPORT_FILE
    report.report_path = str(path)
    write_json(path, report.to_dict())
