"""Prefect 3 flows ``train-pipeline``, ``backtest-pipeline``, ``tune-pipeline``,
``batch-forecast`` and ``validate-pipeline``: thin wrappers around the jobs of
:mod:`deepcast.pipelines.runs`, whose steps run as tasks (:mod:`deepcast.flows.steps`).

``pipeline`` is a YAML path (as from the CLI and deployments) or a config object (from the
Python API); data given in memory arrives wrapped in
:class:`~deepcast.flows.steps.InMemory`, so that Prefect stores a placeholder for the
parameter, never its rows. The flows run on Prefect's ephemeral API when no
``PREFECT_API_URL`` is set.
"""

from __future__ import annotations

from prefect import flow

from deepcast.flows.steps import InMemory, PrefectSteps, inputs, run_name, unwrap
from deepcast.pipelines import runs
from deepcast.pipelines.config import PipelineConfig, override_backtest
from deepcast.pipelines.results import (
    BacktestResult,
    ForecastResult,
    TrainResult,
    TuneResult,
    ValidationResult,
)


@flow(name="validate-pipeline", flow_run_name=lambda: run_name("validate"), log_prints=False)
def validate_pipeline(pipeline: str | PipelineConfig, data: str | InMemory | None = None,
                      report_dir: str | None = None) -> ValidationResult:
    """Ingest -> validate (the report, with Data Docs); bad data is a result."""
    cfg, given = inputs(pipeline, data, report_dir)
    return runs.validate(cfg, given, PrefectSteps())


@flow(name="train-pipeline", flow_run_name=lambda: run_name("train"), log_prints=False)
def train_pipeline(pipeline: str | PipelineConfig, data: str | InMemory | None = None,
                   report_dir: str | None = None) -> TrainResult:
    """Ingest -> validate -> train every model -> track in MLflow -> promote."""
    cfg, given = inputs(pipeline, data, report_dir)
    return runs.train(cfg, given, PrefectSteps())


@flow(name="backtest-pipeline", flow_run_name=lambda: run_name("backtest"), log_prints=False)
def backtest_pipeline(pipeline: str | PipelineConfig, data: str | InMemory | None = None,
                      report_dir: str | None = None, n_windows: int | None = None,
                      step: int | None = None, refit: bool | int | None = None
                      ) -> BacktestResult:
    """Ingest -> validate -> rolling-origin backtest of every model and ensemble -> track in
    MLflow; ``n_windows`` / ``step`` / ``refit`` replace ``evaluation.backtest``'s."""
    cfg, given = inputs(pipeline, data, report_dir)
    cfg = override_backtest(cfg, n_windows, step, refit)
    return runs.backtest(cfg, given, PrefectSteps())


@flow(name="tune-pipeline", flow_run_name=lambda: run_name("tune"), log_prints=False)
def tune_pipeline(pipeline: str | PipelineConfig, trials: int | None = None,
                  output: str | None = None, data: str | InMemory | None = None,
                  report_dir: str | None = None) -> TuneResult:
    """Ingest -> validate -> hyperparameter search (nested run per trial) -> tuned YAML."""
    cfg, given = inputs(pipeline, data, report_dir)
    return runs.tune(cfg, given, trials, output, PrefectSteps())


@flow(name="batch-forecast", flow_run_name=lambda: run_name("forecast"), log_prints=False)
def batch_forecast(pipeline: str | PipelineConfig, output: str | None,
                   model: str = "champion", data: str | InMemory | None = None,
                   report_dir: str | None = None, future: str | InMemory | None = None,
                   options: runs.ForecastOptions | None = None) -> ForecastResult:
    """Load ``models:/NAME@model`` -> validate the history (and the future covariates) ->
    forecast (-> the HTML report of ``options``) -> write the forecast and the report
    together, atomically; ``output`` None returns the forecast without writing it."""
    cfg, given = inputs(pipeline, data, report_dir)
    request = runs.ForecastRequest(model=model, output=output, future=unwrap(future),
                                   options=options or runs.ForecastOptions())
    return runs.forecast(cfg, given, request, PrefectSteps())
