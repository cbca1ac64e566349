"""Dask fan-out (``execution.runner: dask``): each fit of a stage as a Prefect task on Dask.

The stages (``pipelines.train``, ``pipelines.backtest``) take a *mapper*, ``mapper(fn,
jobs) -> results``, and run the same per-fit function either way; this module supplies the
one that sends every job to a Dask cluster through prefect-dask's ``DaskTaskRunner``:

- a ``LocalCluster`` of ``execution.workers`` processes on 127.0.0.1 by default, one
  thread each (Keras models trained in threads of one process share seed state), each
  with its own TensorFlow thread pool of the size a serial run uses (results depend on
  it: set ``TF_NUM_INTRAOP_THREADS`` for both to change it);
- the existing scheduler at ``execution.address`` / ``DEEPCAST_DASK_ADDRESS`` otherwise.

Jobs and results are plain data (frames, configs, MLflow run ids and model URIs), never
live models. Every task reports to Prefect: to ``PREFECT_API_URL`` when set; without it,
local workers are pointed at the ephemeral API this process already runs on (left alone,
each worker process would start an ephemeral server of its own, ~45 s), and a remote
cluster is refused with a message saying how to run a Prefect server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_API_URL, temporary_settings

from deepcast.features.errors import ConfigError
from deepcast.flows.settings import PREFECT_LOGGERS
from deepcast.pipelines.config import DASK_ADDRESS_ENV, ExecutionConfig

log = logging.getLogger("deepcast")


def dask_mapper(ex: ExecutionConfig) -> Callable[[Callable, list], list]:
    """The mapper for ``ex`` (runner dask); a ConfigError at once if a remote cluster could
    not report to Prefect."""
    from deepcast.flows.ephemeral import is_temporary

    address = ex.scheduler_address
    if address and (not PREFECT_API_URL.value() or is_temporary(PREFECT_API_URL.value())):
        raise ConfigError(
            f"the Dask cluster at {address} (execution.address or {DASK_ADDRESS_ENV}) "
            "cannot report to Prefect: PREFECT_API_URL is not set, and Prefect's ephemeral "
            "API is reachable from this process only",
            hint="start a Prefect server (`prefect server start --host 0.0.0.0`) and set "
            "PREFECT_API_URL=http://HOST:4200/api here and on every Dask worker (see "
            "docs/production.md), or drop the address to use a local cluster")
    return partial(_dask_map, ex, address)


def _dask_map(ex: ExecutionConfig, address: str | None, fn: Callable, jobs: list) -> list:
    """``[fn(job) for job in jobs]``, each call a Prefect task run in a Dask worker; the
    first failure is raised (the cluster of the run is then closed)."""
    from prefect_dask import DaskTaskRunner

    if address:
        runner = DaskTaskRunner(address=address)
    else:
        # workers inherit this environment, TensorFlow's thread pool size included: sums
        # split over another number of threads round differently, and the metrics would
        # no longer be those of a serial run on this machine
        runner = DaskTaskRunner(cluster_class="distributed.LocalCluster",
                                cluster_kwargs=local_cluster_kwargs(ex))
    unit = task(fn, name=fn.__name__.replace("_", "-"), task_run_name="{job.label}",
                cache_policy=NO_CACHE)
    log.info("fan-out: %d %s tasks on %s", len(jobs), unit.name,
             address or f"a local Dask cluster of {ex.workers} worker processes")
    with _api_for_workers(), runner:
        if not address:
            runner.client.register_plugin(LocalWorkerSetup())
        futures = [runner.submit(unit, {"job": job}) for job in jobs]
        return [f.result() for f in futures]


def local_cluster_kwargs(ex: ExecutionConfig) -> dict[str, Any]:
    """The local cluster of ``ex``: its worker processes on 127.0.0.1, no dashboard."""
    return {"n_workers": ex.workers, "threads_per_worker": ex.threads_per_worker,
            "processes": True, "host": "127.0.0.1", "dashboard_address": None,
            **({"memory_limit": ex.memory_limit} if ex.memory_limit else {})}


def _api_for_workers() -> AbstractContextManager:
    """Settings under which local workers report to this run's Prefect API: unchanged
    with PREFECT_API_URL, else this process's ephemeral server (started if not yet)."""
    if PREFECT_API_URL.value():
        return nullcontext()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the singleton Prefect's own client uses here
    server.start()
    return temporary_settings({PREFECT_API_URL: server.api_url})


class LocalWorkerSetup(WorkerPlugin):
    """Set up each worker process of the local cluster like this process:

    - Prefect's loggers get this process's filters, so a failure that deepcast reports
      itself is not echoed with a traceback by the worker too (the CLI without --debug);
    - once Python's exit handlers have run (Prefect's log and event flushes included), the
      process ends at once: TensorFlow's native teardown otherwise keeps a closed worker
      alive until the nanny kills it 4 s later, with a warning;
    - a heartbeat that meets the closed scheduler at shutdown logs no traceback.
    """

    name = "deepcast-local-worker"

    def __init__(self) -> None:
        self.filters = {name: list(logging.getLogger(name).filters) for name in PREFECT_LOGGERS}

    def setup(self, worker: Any) -> None:
        import atexit

        for name, filters in self.filters.items():
            for f in filters:
                logging.getLogger(name).addFilter(f)
        logging.getLogger("distributed.worker").addFilter(_shutdown_heartbeat)
        atexit.register(os._exit, 0)


def _shutdown_heartbeat(record: logging.LogRecord) -> bool:
    """Drop the traceback distributed logs when a worker's heartbeat meets the run's own
    scheduler already closed: a race of the local cluster's shutdown under load (seen once
    on 2 busy cores), not a failure; a scheduler lost mid-run fails the run's tasks."""
    return not record.getMessage().startswith(
        "Failed to communicate with scheduler during heartbeat")
