"""The environment a deepcast process runs in: quiet, telemetry-free defaults (the user's
own environment always wins), deepcast's log lines, and Prefect's echo of failures that
deepcast reports itself turned off. Standard library only: the CLI imports this before it
knows which command runs.
"""

from __future__ import annotations

import logging
import os
import sys

QUIET_ENV = {
    # Prefect: no telemetry, no startup race with the analytics service, room for a
    # fresh ephemeral database on 2 cores, no console noise unless asked for.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # TensorFlow / Keras / GE / MLflow: no info banners, no telemetry.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_ENABLE_ONEDNN_OPTS": "0",  # quiet, and bit-reproducible across CPUs
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "DASK_LOGGING__DISTRIBUTED": "warning",  # Dask fan-out: no per-worker start/stop lines
    "KERAS_HOME": os.path.join(os.path.expanduser("~"), ".keras"),
    # Arrow (string ids) on the system allocator: its default pool keeps the pages of freed
    # temporaries, which set the peak of a 10M-row run (3.3x the data against 2.8x)
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}

PREFECT_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.engine", "prefect")


def configure_environment(verbose: bool = False) -> None:
    """Quiet, telemetry-free defaults; the user's own environment always wins."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if "pyarrow" in sys.modules and os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system":
        import pyarrow as pa  # imported already (a library caller): the variable came late

        pa.set_memory_pool(pa.system_memory_pool())
    # TensorFlow's Python logger (retracing notices and the like); stdlib, no TF import
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"


class StderrHandler(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a record is emitted: a stream
    that replaced it since (a notebook's, a test's capture) gets the lines, and one that
    was closed since is never written to."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(quiet: bool) -> None:
    """deepcast's own log lines on stderr, prefixed ``deepcast:`` (warnings only with
    ``quiet``); the chatty libraries at WARNING."""
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("deepcast: %(message)s"))
    log = logging.getLogger("deepcast")
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    for noisy in ("great_expectations", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def is_store_error(exc: BaseException | None) -> bool:
    """An error of the tracking store's client (MLflow, or its HTTP layer)."""
    module = type(exc).__module__.split(".")[0] if exc is not None else ""
    return module in ("mlflow", "requests", "urllib3")


class HideExpectedFailures(logging.Filter):
    """Hide Prefect's echo of a failure that deepcast reports itself (one clear message)."""

    NAMES = ("ConfigError", "DataError", "ValidationFailed", "RunFailed", "DriftBlocked",
             "MlflowException")

    def filter(self, record: logging.LogRecord) -> bool:
        from deepcast.features.errors import DeepcastError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DeepcastError) or is_store_error(exc):
            return False
        message = str(record.msg)
        return not any(f"{name}(" in message or f"{name}:" in message for name in self.NAMES)


def quiet_prefect() -> None:
    """Filter Prefect's loggers with :class:`HideExpectedFailures` (not under --debug or
    --verbose, where the whole story is wanted)."""
    for name in PREFECT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HideExpectedFailures) for f in logger.filters):
            logger.addFilter(HideExpectedFailures())  # once, however often main() runs
