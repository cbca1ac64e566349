"""Where a run's prepared shards live between calls (:mod:`.train_shards`): the
:class:`ShardPool` protocol and its in-process kind; the Dask kind is
``deepcast.flows.shard_pool.DaskShardPool``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class ShardPool(Protocol):
    """Where shards live between calls: a Dask cluster's workers, or this process."""

    def keep(self, fn: Callable, items: list, *args: Any) -> list:
        """``fn(item, *args)`` for every item, each result kept where it was made; its
        handles."""
        ...

    def run(self, fn: Callable, handles: list, *args: Any, each: list | None = None
            ) -> list:
        """``fn(value, *args[, each[i]])`` where each handle's value lives; the results."""
        ...

    def release(self, handles: list) -> None:
        """Drop kept values."""
        ...


class InProcessPool:
    """A :class:`ShardPool` in this process (the serial runner, tests)."""

    def keep(self, fn: Callable, items: list, *args: Any) -> list:
        return [fn(item, *args) for item in items]

    def run(self, fn: Callable, handles: list, *args: Any, each: list | None = None
            ) -> list:
        extra = [()] * len(handles) if each is None else [(e,) for e in each]
        return [fn(h, *args, *x) for h, x in zip(handles, extra, strict=True)]

    def release(self, handles: list) -> None:
        handles.clear()
