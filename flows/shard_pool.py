"""The Dask side of training from shards (``pipelines.runs.train_shards``): a
:class:`~deepcast.pipelines.runs.pools.ShardPool` whose kept values are futures held
by the workers that made them.

Each shard is read, validated and prepared once by one worker and stays there; every later
call on it (an epoch's sample of its windows, its holdout's score) is a task on the worker
that holds it, so only samples and summaries travel. A worker that dies loses its shards
and Dask makes them again from their lineage (read, validate, prepare) on another worker.
The cluster is the run's own ``LocalCluster`` (``execution.workers``, ``memory_limit``) or
the scheduler at ``execution.address`` / ``DEEPCAST_DASK_ADDRESS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from deepcast.pipelines.config import ExecutionConfig

log = logging.getLogger("deepcast")


class DaskShardPool:
    """A shard pool on a Dask cluster; use as a context manager (it closes the cluster it
    started)."""

    def __init__(self, ex: ExecutionConfig) -> None:
        from distributed import Client, LocalCluster

        from deepcast.flows.fanout import LocalWorkerSetup, local_cluster_kwargs

        address = ex.scheduler_address
        self._cluster = None if address else LocalCluster(**local_cluster_kwargs(ex))
        try:
            self.client = Client(address or self._cluster)
            if self._cluster is not None:
                self.client.register_plugin(LocalWorkerSetup())
        except BaseException:  # the cluster this pool started goes with it
            if self._cluster is not None:
                self._cluster.close()
            raise
        self._held: list[Any] = []
        log.info("training from shards on %s", address or
                 f"a local Dask cluster of {ex.workers} worker processes")

    def keep(self, fn: Callable, items: list, *args: Any) -> list:
        # each shared argument a task of its own, its value in the scheduler's graph once:
        # a kept value that a dead worker took with it is made again from its lineage, which
        # scattered data (no lineage) would break ("lost dependencies")
        args = tuple(a if _small(a) else self.client.submit(_same, a, pure=False)
                     for a in args)
        self._held.extend(args)
        return [self.client.submit(fn, item, *args, pure=False) for item in items]

    def run(self, fn: Callable, handles: list, *args: Any, each: list | None = None
            ) -> list:
        from distributed import Future

        args = self._shared(args)
        extra = [()] * len(handles) if each is None else [(e,) for e in each]
        kept = [h for h in handles if isinstance(h, Future)]
        holders = self.client.who_has(kept) if kept else {}
        # each call where its part lives (loosely: a part lost with its worker is made again
        # elsewhere)
        futures = [self.client.submit(fn, h, *args, *x, pure=False, **_near(holders, h))
                   for h, x in zip(handles, extra, strict=True)]
        return self.client.gather(futures)

    def _shared(self, args: tuple) -> tuple:
        """Arguments every task gets, sent to each worker once (the model bundle, the
        panel's encoder: megabytes with many series) instead of with every task."""
        return tuple(a if _small(a) else self.client.scatter(a, broadcast=True, hash=False)
                     for a in args)

    def release(self, handles: list) -> None:
        for h in handles:
            h.release()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskShardPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _near(holders: dict, handle: Any) -> dict[str, Any]:
    """Submit options that run a call on the worker holding ``handle``'s value, loosely
    (a value lost with its worker is made again elsewhere); none for a plain value."""
    where = list(holders.get(getattr(handle, "key", None), ()))
    return {"workers": where, "allow_other_workers": True} if where else {}


def _small(arg: Any) -> bool:
    return isinstance(arg, int | float | str) or arg is None


def _same(value: Any) -> Any:
    return value
