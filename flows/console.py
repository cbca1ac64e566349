"""Terminal output of the CLI: rich progress bars on stderr and summary tables on stdout.

Progress bars appear only when stderr is a terminal and neither ``--quiet`` nor ``--json``
is given, so CI logs and piped output stay plain. Tables are rich tables drawn at their
natural width, so no cell is ever cut short.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO


def wants_progress(quiet: bool, as_json: bool, stream: TextIO | None = None) -> bool:
    """Progress bars only for a person watching: a terminal, not --quiet, not --json."""
    stream = stream if stream is not None else sys.stderr
    return not (quiet or as_json) and bool(getattr(stream, "isatty", lambda: False)())


class RichReporter:
    """``deepcast.pipelines.progress`` reporter drawing one rich bar per task."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def start(self, description: str, total: float | None) -> int:
        return self.progress.add_task(description, total=total)

    def advance(self, task_id: int, amount: float) -> None:
        self.progress.advance(task_id, amount)

    def finish(self, task_id: int) -> None:
        """Show the task as done (early stopping ends a training bar before its total)."""
        task = next(t for t in self.progress.tasks if t.id == task_id)
        done = task.completed or 1
        self.progress.update(task_id, total=done, completed=done)
        self.progress.stop_task(task_id)


class _ConsoleLogHandler(logging.Handler):
    """deepcast's log lines printed above the live bars instead of through them."""

    def __init__(self, console: Any) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.format(record), markup=False, highlight=False,
                               soft_wrap=True)
        except Exception:  # noqa: BLE001 (a display problem must never fail a run)
            self.handleError(record)


@contextmanager
def progress_display(enabled: bool, console: Any = None) -> Iterator[None]:
    """Show stage progress (epochs per model, backtest cut-offs, forecast shards) while
    the block runs, when ``enabled``; otherwise do nothing."""
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from deepcast.pipelines import progress

    console = console or Console(stderr=True)
    bars = Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)
    log = logging.getLogger("deepcast")
    handlers = log.handlers[:]
    handler = _ConsoleLogHandler(console)
    if handlers:
        handler.setFormatter(handlers[0].formatter)
    log.handlers[:] = [handler]
    previous = progress.set_reporter(RichReporter(bars))
    try:
        with bars:
            yield
    finally:
        progress.set_reporter(previous)
        log.handlers[:] = handlers


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], out: TextIO | None = None,
                title: str | None = None) -> None:
    """A summary table (one dict per row) as a rich table on ``out`` (stdout)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    out = out or sys.stdout
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False,
                  pad_edge=False)
    for c in columns:
        numeric = all(isinstance(r.get(c), int | float) or r.get(c) is None for r in rows)
        table.add_column(str(c), justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    # drawn at its natural width, never squeezed into "…" cells: a terminal narrower than
    # the table wraps the lines (as pandas' to_string would), logs keep whole rows
    console = Console(file=out, width=10_000, highlight=False, soft_wrap=True)
    console.width = console.measure(table).maximum
    console.print(table)
