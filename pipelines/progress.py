"""Progress reporting for long stages, without tying the stages to a display.

A stage wraps its loop in :func:`task` and calls the returned ``advance``; by default
nothing is shown (tests, CI, Prefect workers, library use). The CLI installs a display
(``deepcast.flows.console``, rich progress bars on a terminal) with :func:`set_reporter`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

Advance = Callable[[float], None]


class Reporter(Protocol):
    """A display of named tasks with a known (or unknown: None) total."""

    def start(self, description: str, total: float | None) -> int: ...

    def advance(self, task_id: int, amount: float) -> None: ...

    def finish(self, task_id: int) -> None: ...


_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Install ``reporter`` (None: no display); return the one it replaces."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


@contextmanager
def task(description: str, total: float | None = None) -> Iterator[Advance]:
    """A progress task: yields ``advance(amount)``; the task shows as done on exit."""
    reporter = _reporter
    if reporter is None:
        yield lambda amount=1: None
        return
    task_id = reporter.start(description, total)
    try:
        yield lambda amount=1: reporter.advance(task_id, amount)
    finally:
        reporter.finish(task_id)
