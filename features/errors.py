"""Errors that carry the CLI exit code, so every layer can fail with a clear message.

Exit codes (documented in the README): 0 ok, 1 run failed, 2 bad command line or
config, 3 data failed validation; 130 interrupted (Ctrl-C or SIGTERM). Defined here only.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_BAD_DATA = 3
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM, as a shell reports SIGINT


class DeepcastError(Exception):
    """An expected failure: the message says what, where and how to fix it."""

    exit_code = EXIT_RUN_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  fix: {hint}")


class ConfigError(DeepcastError):
    """The pipeline YAML or the command line is invalid."""

    exit_code = EXIT_BAD_CONFIG


class DataError(DeepcastError):
    """The data cannot be read or failed validation."""

    exit_code = EXIT_BAD_DATA


class RunFailed(DeepcastError):
    """A run started but could not finish (training diverged, tracking failed, ...)."""

    exit_code = EXIT_RUN_FAILED


class ValidationFailed(DataError):
    """Data failed its validation suite; carries the report (``summary()``, ``to_dict()``)."""

    def __init__(self, report) -> None:
        self.report = report
        super().__init__(report.summary())
