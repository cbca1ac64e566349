"""Prefect-free jobs: validate, train, backtest, tune, forecast and retrain as plain
functions that take a config (+ optional DataFrame) and return typed results.

Every stage call of a job goes through a :class:`Steps` object: :data:`PLAIN` calls the
function in this process; the Prefect flows pass steps that run each as a task of the same
name (:mod:`deepcast.flows.steps`), so one body of code runs either way and gives the same
results. Every read of and write to the tracking store goes through :mod:`.store`.

- :mod:`.base`: ``Steps``, ``RunInputs``, the config from a path or a dict, ingest and
  validate steps;
- :mod:`.jobs`: ``validate``, ``train``, ``backtest``, ``tune``;
- :mod:`.forecast`: ``forecast``; :mod:`.retrain`: ``retrain``;
- :mod:`.store`: the tracking store's side of a run.
"""

from deepcast.pipelines.runs.base import (
    PLAIN,
    PlainSteps,
    RunInputs,
    Steps,
    config_of,
    preload,
)
from deepcast.pipelines.runs.forecast import ForecastOptions, ForecastRequest, forecast
from deepcast.pipelines.runs.jobs import backtest, train, tune, validate
from deepcast.pipelines.runs.retrain import retrain

__all__ = ["PLAIN", "ForecastOptions", "ForecastRequest", "PlainSteps", "RunInputs", "Steps",
           "backtest", "config_of", "forecast", "preload", "retrain", "train", "tune",
           "validate"]
