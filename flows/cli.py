"""The ``deepcast`` command line: parse, set up the environment, run one command, and turn
its errors into exit codes (0 ok, 1 run failed, 2 bad command line or config, 3 data
failed validation; defined in :mod:`deepcast.features.errors`).

``--help`` and argument/config errors stay instant: heavy frameworks (TensorFlow, Prefect,
MLflow, Great Expectations) are imported only by the commands that need them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from deepcast.features.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED
from deepcast.flows.commands import COMMANDS
from deepcast.flows.parser import build_parser
from deepcast.flows.settings import (
    configure_environment,
    is_store_error,
    quiet_prefect,
    setup_logging,
)

__all__ = ["configure_environment", "main"]


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM ends a run like Ctrl-C: open MLflow runs are closed (FAILED), temp files
    removed, exit 130."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepcast`` console script."""
    args = build_parser().parse_args(argv)
    configure_environment(verbose=args.verbose)
    setup_logging(args.quiet)
    if not (args.debug or args.verbose):
        quiet_prefect()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `deepcast ... | head`: the reader stopped reading; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the one place that turns errors into exit codes
        return _report(exc, args.debug)


def _report(exc: Exception, debug: bool) -> int:
    """Print an error as one clear message (the traceback too with --debug); its exit code."""
    from deepcast.features.errors import DeepcastError

    if debug:
        traceback.print_exc()
    if is_store_error(exc):
        from deepcast.pipelines.runs.store import store_failed

        exc = store_failed(exc)
    if isinstance(exc, DeepcastError):
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"error: run failed: {describe(exc)}\n"
          "  fix: rerun with --debug for the full traceback"
          + ("" if str(exc).strip() else " (it shows where the error was raised)"),
          file=sys.stderr)
    return EXIT_RUN_FAILED


def describe(exc: BaseException) -> str:
    """``Type: message``; an error raised without a message (``ValueError()``) is named by
    its repr and says so, instead of ending in an empty ``ValueError: ``."""
    message = str(exc).strip()
    if message:
        return f"{type(exc).__name__}: {message}"
    return f"{exc!r}, raised without a message"


if __name__ == "__main__":
    sys.exit(main())
