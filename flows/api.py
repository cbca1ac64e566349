"""The Python API, re-exported by ``import deepcast``: the CLI's runs as functions, pandas
frames in and typed results out.

Every function takes the pipeline config as a YAML path, a dict or a loaded config, and
runs the same jobs with the same MLflow tracking and promotion gate as the CLI. Data
(``df``, ``history``, ``future``) is a DataFrame in memory, a CSV/Parquet path, or None
for the config's ``data.path`` / ``data.sql``. ``orchestrator="none"`` (the default) calls
the stages in this process and never imports Prefect; ``"prefect"`` runs them as tasks of
the Prefect flows the CLI runs (``train-pipeline``, ``batch-forecast``, ...). Both give the
same results. Failures raise deepcast's errors (:class:`~deepcast.ConfigError`,
:class:`~deepcast.DataError`, :class:`~deepcast.RunFailed`) with the CLI's one-line
messages, naming this module's keyword arguments where the CLI names its flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from deepcast.features.errors import ConfigError
from deepcast.flows.api_terms import speaks_python
from deepcast.flows.settings import configure_environment

if TYPE_CHECKING:
    import pandas as pd

    from deepcast.pipelines.config import PipelineConfig
    from deepcast.pipelines.results import (
        BacktestResult,
        ForecastResult,
        RetrainResult,
        TrainResult,
        TuneResult,
        ValidationResult,
    )
    from deepcast.pipelines.runs import RunInputs

    ConfigSource = str | os.PathLike | Mapping[str, Any] | PipelineConfig
    Data = pd.DataFrame | str | os.PathLike | None

Orchestrator = Literal["none", "prefect"]
ORCHESTRATORS = ("none", "prefect")


@dataclass(frozen=True)
class ForecastReport:
    """What a forecast writes besides the forecast: the self-contained HTML report
    (``html``, plotting ``series`` besides the largest and worst ones) and the folder of
    the history's validation report (``report_dir``)."""

    html: str | os.PathLike | None = None
    series: Sequence[str] = ()
    report_dir: str | os.PathLike | None = None


@dataclass(frozen=True)
class ForecastOutput:
    """Where the forecast is written (``path``: a .csv / .parquet file or ``sql://TABLE``)
    and how: a CSV's text cells starting ``=``, ``+``, ``-``, ``@``, tab or CR get a
    leading ``'`` so a spreadsheet shows them as text (``formula_guard``; False writes
    them raw)."""

    path: str | os.PathLike
    formula_guard: bool = True


@speaks_python()
def load_config(source: ConfigSource) -> PipelineConfig:
    """A validated pipeline config from a YAML file or a dict. A relative ``data.path``
    is resolved against the YAML's folder (the working directory for a dict)."""
    from deepcast.pipelines.runs import config_of

    return config_of(source)[0]


@speaks_python()
def validate(cfg: ConfigSource, df: Data = None, *, report_dir: str | os.PathLike | None = None,
             orchestrator: Orchestrator = "none") -> ValidationResult:
    """Check the data against the pipeline's rules; writes the JSON report and Data Docs
    HTML to ``report_dir``. Bad data is a result (``success`` False), not an error."""
    if _use_prefect(orchestrator):
        from deepcast.flows.flows import validate_pipeline

        return validate_pipeline(**_flow_args(cfg, df, report_dir))
    from deepcast.pipelines import runs

    return runs.validate(*_job_args(cfg, df, report_dir))


@speaks_python()
def train(cfg: ConfigSource, df: Data = None, *, report_dir: str | os.PathLike | None = None,
          orchestrator: Orchestrator = "none") -> TrainResult:
    """Validate, train and score every model on the holdout, track it all in MLflow,
    register the best and promote it to champion if it passes the gate. Bad data raises
    :class:`~deepcast.ValidationFailed`."""
    if _use_prefect(orchestrator):
        from deepcast.flows.flows import train_pipeline

        return train_pipeline(**_flow_args(cfg, df, report_dir))
    from deepcast.pipelines import runs

    return runs.train(*_job_args(cfg, df, report_dir))


@speaks_python()
def backtest(cfg: ConfigSource, df: Data = None, *, n_windows: int | None = None,
             step: int | None = None, refit: bool | int | None = None,
             report_dir: str | os.PathLike | None = None,
             orchestrator: Orchestrator = "none") -> BacktestResult:
    """Score every model, every ensemble and seasonal naive on the same rolling cut-offs
    (``evaluation.backtest``; ``n_windows``, ``step`` and ``refit`` -- true, false or k --
    replace the config's when given), tracked in MLflow."""
    from deepcast.pipelines.config import override_backtest

    prefect = _use_prefect(orchestrator)
    windows = {"n_windows": n_windows, "step": step, "refit": refit}
    config, inputs = _job_args(cfg, df, report_dir)
    config = override_backtest(config, **windows)  # a bad value fails here, at once
    if prefect:
        from deepcast.flows.flows import backtest_pipeline

        return backtest_pipeline(**_flow_args(cfg, df, report_dir), **windows)
    from deepcast.pipelines import runs

    return runs.backtest(config, inputs)


@speaks_python()
def tune(cfg: ConfigSource, df: Data = None, trials: int | None = None, *,
         output: str | os.PathLike | None = None, report_dir: str | os.PathLike | None = None,
         orchestrator: Orchestrator = "none") -> TuneResult:
    """Search the ``tune:`` space for one model (``trials``, default ``tune.trials``) and
    write the best configuration as a pipeline YAML: ``output``, else PIPELINE.tuned.yaml
    beside the YAML (./NAME.tuned.yaml for a config given as a dict)."""
    if trials is not None and trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}", hint="e.g. trials=20")
    if _use_prefect(orchestrator):
        from deepcast.flows.flows import tune_pipeline

        return tune_pipeline(**_flow_args(cfg, df, report_dir), trials=trials,
                             output=_path(output))
    from deepcast.pipelines import runs

    config, inputs = _job_args(cfg, df, report_dir)
    return runs.tune(config, inputs, trials, _path(output))


@speaks_python(data="history")
def forecast(cfg: ConfigSource, model: str | int = "champion", history: Data = None,
             future: Data = None, output: str | os.PathLike | ForecastOutput | None = None, *,
             report: str | os.PathLike | ForecastReport | None = None,
             orchestrator: Orchestrator = "none") -> ForecastResult:
    """Forecast the horizon after each series of ``history`` with a registered model
    (an alias such as ``"champion"`` or a version number); the rows are on the result's
    ``forecast`` and, with ``output``, written atomically to a CSV/Parquet file or
    ``sql://TABLE`` (a :class:`ForecastOutput` turns off the CSV formula guard).
    ``report``: an HTML report path, or a :class:`ForecastReport`; the forecast and the
    report are written together (both change, or neither does)."""
    from deepcast.pipelines.runs import ForecastOptions

    extra = report if isinstance(report, ForecastReport) else ForecastReport(html=report)
    guard = output.formula_guard if isinstance(output, ForecastOutput) else True
    path = _path(output.path if isinstance(output, ForecastOutput) else output)
    options = ForecastOptions(report=_path(extra.html), series=tuple(map(str, extra.series)),
                              formula_guard=guard)
    if _use_prefect(orchestrator):
        from deepcast.flows.flows import batch_forecast

        return batch_forecast(**_flow_args(cfg, history, extra.report_dir),
                              output=path, model=str(model),
                              future=_flow_data(future), options=options)
    from deepcast.pipelines import runs

    config, inputs = _job_args(cfg, history, extra.report_dir)
    request = runs.ForecastRequest(model=str(model), output=path,
                                   future=_data(future), options=options)
    return runs.forecast(config, inputs, request)


@speaks_python()
def retrain(cfg: ConfigSource, output: str | os.PathLike, df: Data = None, *,
            as_of: str | None = None, report_dir: str | os.PathLike | None = None,
            orchestrator: Orchestrator = "none") -> RetrainResult:
    """The nightly loop: validate, check drift against the champion, train, gate, and
    write the champion's forecast to ``output`` (``{date}`` becomes the run's date);
    ``as_of`` keeps the rows up to that date. A failure leaves the registry's aliases
    (champion, challenger) and the last forecast file as they were."""
    if _use_prefect(orchestrator):
        from deepcast.flows.retrain import retrain as retrain_flow

        return retrain_flow(**_flow_args(cfg, df, report_dir), output=str(output),
                            as_of=as_of)
    from deepcast.pipelines import runs

    config, inputs = _job_args(cfg, df, report_dir)
    return runs.retrain(config, str(output), inputs, as_of)


# ---- arguments -------------------------------------------------------------------------

def _use_prefect(orchestrator: str) -> bool:
    """Whether to run through the Prefect flows; sets the quiet environment defaults."""
    if orchestrator not in ORCHESTRATORS:
        raise ConfigError(f"orchestrator must be one of {', '.join(map(repr, ORCHESTRATORS))}"
                          f", got {orchestrator!r}", hint='e.g. orchestrator="none"')
    configure_environment()
    return orchestrator == "prefect"


def _path(value: str | os.PathLike | None) -> str | None:
    return None if value is None else os.fspath(value)


def _data(value: Data) -> pd.DataFrame | str | None:
    """Data as a job reads it: a frame, a file path, or None (the config's data)."""
    import pandas as pd

    if value is None or isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, str | os.PathLike):
        return os.fspath(value)
    raise ConfigError(f"data must be a pandas DataFrame, a CSV/Parquet path or None; got "
                      f"{type(value).__name__}", hint="e.g. pd.read_csv(...) or 'data.csv'")


def _job_args(cfg: ConfigSource, df: Data, report_dir: str | os.PathLike | None
              ) -> tuple[PipelineConfig, RunInputs]:
    """(config, inputs) of a job run in this process."""
    from deepcast.pipelines.runs import RunInputs, config_of

    config, pipeline_file = config_of(cfg)
    return config, RunInputs(_data(df), _path(report_dir), pipeline_file)


def _flow_data(value: Data) -> Any:
    """A data parameter of a flow: the file path, or the frame wrapped so that Prefect
    does not store its rows with the flow run."""
    from deepcast.flows.steps import InMemory

    data = _data(value)
    return data if data is None or isinstance(data, str) else InMemory(data)


def _flow_args(cfg: ConfigSource, df: Data, report_dir: str | os.PathLike | None
               ) -> dict[str, Any]:
    """The parameters every flow takes: the YAML path (read inside the flow run, as from
    the CLI) or the config object, the data, the report folder."""
    if isinstance(cfg, str | os.PathLike):
        pipeline: Any = os.fspath(cfg)
    else:  # (not load_config: its errors would be reworded for its caller twice)
        from deepcast.pipelines.runs import config_of

        pipeline = config_of(cfg)[0]
    return {"pipeline": pipeline, "data": _flow_data(df), "report_dir": _path(report_dir)}
