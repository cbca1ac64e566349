"""The Prefect side of the jobs of :mod:`deepcast.pipelines.runs`: each step a task.

:class:`PrefectSteps` runs every stage call of a job as a Prefect task named like the step
(``ingest``, ``validate``, ``train-models``, ...). Only I/O steps retry (reading data,
loading a model, writing the forecast), and only on unexpected errors: a file that is
simply invalid fails at once with its message. Nothing is cached. The fits of a stage fan
out to Dask under ``execution.runner: dask`` (:mod:`deepcast.flows.fanout`). Also here:
what every flow does with its parameters (:func:`inputs`, :class:`InMemory`) and the names
of its runs.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from deepcast.features.errors import DeepcastError
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.results import RetrainResult
from deepcast.pipelines.runs import RunInputs, config_of

T = TypeVar("T")


def _retry_unexpected(task, task_run, state) -> bool:
    """Retry only failures that are not deepcast's own (clear, final) errors."""
    try:
        state.result()
    except DeepcastError:
        return False
    except Exception:
        return True
    return False


IO = {"retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": _retry_unexpected,
      "cache_policy": NO_CACHE}
PURE = {"cache_policy": NO_CACHE}


@functools.cache
def _task(name: str, fn: Callable[..., Any], io: bool) -> Any:
    """The task that runs ``fn`` as step ``name`` (made once per step and function)."""
    return task(fn, name=name, **(IO if io else PURE))


def fan_out(cfg: PipelineConfig) -> Callable | None:
    """The mapper for the stages' per-fit function under ``cfg.execution``: None runs
    every fit in this process; runner dask runs each as a Prefect task on Dask
    (:mod:`deepcast.flows.fanout`). Called when a job starts, so a set-up error shows at once."""
    if cfg.execution.runner == "serial":
        return None
    from deepcast.flows.fanout import dask_mapper

    return dask_mapper(cfg.execution)


class PrefectSteps:
    """Steps as Prefect tasks of the running flow; ``publish`` shows a retrain's record
    as Prefect artifacts (the ``publish-artifacts`` task), when given."""

    def __init__(self, publish: Callable[[PipelineConfig, RetrainResult], list[str]]
                 | None = None) -> None:
        self._publish = publish

    def run(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return _task(name, fn, False)(*args, **kwargs)

    def io(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return _task(name, fn, True)(*args, **kwargs)

    def mapper(self, cfg: PipelineConfig) -> Callable | None:
        return fan_out(cfg)

    def publish(self, cfg: PipelineConfig, result: RetrainResult) -> list[str]:
        if self._publish is None:
            return []
        return self.io("publish-artifacts", self._publish, cfg, result)

    def pool(self, cfg: PipelineConfig) -> AbstractContextManager[Any]:
        if cfg.execution.runner == "serial":
            from deepcast.pipelines.runs.pools import InProcessPool

            return nullcontext(InProcessPool())
        from deepcast.flows.shard_pool import DaskShardPool

        return DaskShardPool(cfg.execution)


class InMemory:
    """A DataFrame handed to a flow as a parameter; Prefect's parameter serialisation
    cannot encode it and records ``"<InMemory>"`` instead of the rows."""

    __slots__ = ("frame",)

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def __repr__(self) -> str:
        return f"<InMemory DataFrame of {len(self.frame)} rows>"


def unwrap(data: str | InMemory | None) -> pd.DataFrame | str | None:
    """A data parameter as a job reads it: the frame, or the file path (None: the config's)."""
    return data.frame if isinstance(data, InMemory) else data


def inputs(pipeline: str | PipelineConfig, data: str | InMemory | None,
           report_dir: str | None) -> tuple[PipelineConfig, RunInputs]:
    """The config (read here, inside the flow run) and what the job reads."""
    cfg, pipeline_file = config_of(pipeline)
    return cfg, RunInputs(unwrap(data), report_dir, pipeline_file)


def pipeline_stem(pipeline: Any) -> str:
    """How run names call a pipeline: its YAML file's stem, or the config's name."""
    if isinstance(pipeline, PipelineConfig):
        return pipeline.name
    return Path(str(pipeline or "pipeline")).stem


def run_name(prefix: str) -> str:
    """``PREFIX-PIPELINE-TIMESTAMP``, the name of a flow run."""
    pipeline = pipeline_stem(flow_run.parameters.get("pipeline", "pipeline"))
    return f"{prefix}-{pipeline}-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M%S}"
