"""Prefect 3 flows ``train-pipeline`` and ``batch-forecast``: thin tasks around the stages.

Only I/O tasks retry (reading data, loading a model, writing the forecast), and only on
unexpected errors: a file that is simply invalid fails at once with its message. The
flows run on Prefect's ephemeral API when no ``PREFECT_API_URL`` is set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from deepcast.features.errors import DeepcastError, ValidationFailed
from deepcast.pipelines.config import DataConfig, PipelineConfig, load_config, resolved_config
from deepcast.pipelines.ingest import cut_at, file_sha256, frame_sha256, ingest, parse_as_of
from deepcast.pipelines.validate import report_dir_for, validate_long_frame


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


@task(name="ingest", **IO)
def ingest_task(data: DataConfig, path: str | None = None) -> pd.DataFrame:
    return ingest(data, path)


@task(name="validate", **PURE)
def validate_task(raw: pd.DataFrame, cfg: PipelineConfig, report_dir: Path,
                  min_length: int | None = None) -> tuple[pd.DataFrame, Any]:
    clean, report = validate_long_frame(raw, cfg, report_dir, min_length=min_length)
    if not report.success:
        raise ValidationFailed(report)
    return clean, report


def fan_out(cfg: PipelineConfig) -> Callable | None:
    """The mapper for the stages' per-fit function under ``cfg.execution``: None runs
    every fit in this process; runner dask runs each as a Prefect task on Dask
    (:mod:`deepcast.flows.fanout`). Called when a flow starts, so a set-up error shows at once."""
    if cfg.execution.runner == "serial":
        return None
    from deepcast.flows.fanout import dask_mapper

    return dask_mapper(cfg.execution)


@task(name="train-models", **PURE)
def train_task(clean: pd.DataFrame, cfg: PipelineConfig, tracker: Any, data_sha256: str,
               mapper: Callable | None = None):
    from deepcast.pipelines.train import train_models

    return train_models(clean, cfg, tracker, data_sha256=data_sha256, mapper=mapper)


@task(name="promote", **PURE)
def promote_task(outcome: Any, clean: pd.DataFrame, cfg: PipelineConfig, tracker: Any):
    from deepcast.pipelines.promote import promote

    return promote(outcome, clean, cfg, tracker)


@task(name="ingest-future", **IO)
def ingest_future_task(data: DataConfig, path: str) -> pd.DataFrame:
    from deepcast.pipelines.ingest import ingest_future

    return ingest_future(data, path)


@task(name="load-model", **IO)
def load_model_task(tracker: Any, model: str):
    """(version, model): the registered version ``model`` names, loaded by the registry's
    verified loader (a version that is not deepcast's model is refused, never run)."""
    ref = tracker.registry.resolve(model)
    return ref, tracker.registry.load(ref)


@task(name="predict", **PURE)
def predict_task(model: Any, history: pd.DataFrame, id_col: str = "unique_id"
                 ) -> pd.DataFrame:
    from deepcast.pipelines.forecast import predict_in_shards

    return predict_in_shards(model.predict, history, id_col)


@task(name="write-report", **IO)
def report_task(path: str, fc: pd.DataFrame, history: pd.DataFrame, tracker: Any, ref: Any,
                cfg: PipelineConfig, alias: str, output: str, series: list[str]) -> str:
    from deepcast.pipelines.report import render_report, write_report

    text = render_report(fc, history, tracker.history.training_info(ref), pipeline=cfg.name,
                         alias=alias, output=output, metric=cfg.evaluation.metric,
                         season_length=cfg.data.season_length, chosen=series)
    return str(write_report(path, text))


@task(name="write-forecast", **IO)
def write_task(fc: pd.DataFrame, output: str, url_env: str | None = None) -> str:
    from deepcast.pipelines.forecast import write_output

    return str(write_output(fc, output, url_env))


def _run_name(prefix: str) -> str:
    pipeline = Path(str(flow_run.parameters.get("pipeline", "pipeline"))).stem
    return f"{prefix}-{pipeline}-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M%S}"


def _source(cfg: PipelineConfig, data: str | None) -> str | None:
    """The data file to read: ``--data``, else ``data.path``; None for a ``data.sql`` query."""
    return data or (str(cfg.data.path) if cfg.data.path is not None else None)


def _validated(cfg: PipelineConfig, data: str | None, report_dir: str | None,
               as_of: str | None = None):
    """Ingest (rows up to ``as_of`` when given) and validate (stops the flow on bad data):
    (source, raw, clean, report)."""
    source = _source(cfg, data)
    raw = cut_at(ingest_task(cfg.data, source), parse_as_of(as_of, cfg.data))
    clean, report = validate_task(raw, cfg, report_dir_for(cfg, report_dir))
    return source, raw, clean, report


def _run_tags(cfg: PipelineConfig, stage: str, source: str | None, data_sha: str
              ) -> dict[str, str]:
    """Tags of a parent run: which pipeline, stage and data (never a database URL)."""
    from deepcast.pipelines.tracking import tags as tag

    return {tag.PIPELINE: cfg.name, tag.STAGE: stage,
            tag.DATA_PATH: source or cfg.data.source, tag.DATA_SHA256: data_sha}


@flow(name="train-pipeline", flow_run_name=lambda: _run_name("train"), log_prints=False)
def train_pipeline(pipeline: str, data: str | None = None, report_dir: str | None = None
                   ) -> dict[str, Any]:
    """Ingest -> validate -> train every model -> track in MLflow -> promote."""
    cfg = load_config(pipeline)
    mapper = fan_out(cfg)
    source, raw, clean, report = _validated(cfg, data, report_dir)
    return _train_and_promote(cfg, pipeline, source, raw, clean, report, mapper)


@task(name="save-reference-profile", **IO)
def save_profile_task(tracker: Any, outcome: Any, raw: pd.DataFrame, cfg: PipelineConfig
                      ) -> dict[str, Any]:
    """Profile the training data (drift reference) and log it with every model run."""
    from deepcast.pipelines.drift import PROFILE_ARTIFACT, profile_window, reference_profile

    profile = reference_profile(raw, profile_window(cfg.drift, cfg.features.lookback))
    tracker.log_dict(profile, PROFILE_ARTIFACT)
    for model in outcome.models:
        tracker.log_dict(profile, PROFILE_ARTIFACT, run_id=model.run_id)
    return profile


def _train_and_promote(cfg: PipelineConfig, pipeline: str, source: str | None,
                       raw: pd.DataFrame, clean: pd.DataFrame, report: Any,
                       mapper: Callable | None = None) -> dict[str, Any]:
    """The train run on validated data: train every model (through ``mapper``, see
    :func:`fan_out`), save the drift reference profile with them, promote through the
    gate; the ``train`` summary."""
    from deepcast.pipelines.tracking import Tracker
    from deepcast.pipelines.tracking import tags as tag

    tracker = Tracker(cfg.name)
    data_sha = frame_sha256(clean)
    tags = {**_run_tags(cfg, "train", source, data_sha),
            tag.PIPELINE_FILE: str(Path(pipeline)),
            tag.FILE_SHA256: file_sha256(source) if source else ""}
    with tracker.run(f"train-{cfg.name}", tags=tags) as parent_id:
        tracker.log_params(resolved_config(cfg))
        tracker.log_metrics({"data_rows": len(clean), "data_series": clean["unique_id"].nunique(),
                             "data_rows_raw": len(raw),
                             "data_series_dropped": len(report.dropped_series),
                             "data_rows_quarantined": report.quarantined})
        tracker.log_dict(resolved_config(cfg), "config/pipeline.json")
        tracker.log_dict(report.to_dict(), "validation/validation.json")
        if report.quarantine_path:
            tracker.log_artifact(report.quarantine_path, "validation")
        outcome = train_task(clean, cfg, tracker, data_sha, mapper)
        save_profile_task(tracker, outcome, raw, cfg)
        decision = promote_task(outcome, clean, cfg, tracker)
    return {
        "pipeline": cfg.name,
        "parent_run_id": parent_id,
        "metric": cfg.evaluation.metric,
        "table": outcome.table().to_dict(orient="records"),
        "reference": outcome.reference,
        "best": outcome.best.name,
        "decision": decision.to_dict(),
        "n_rows": len(clean),
        "n_series": outcome.n_series,
        "dropped_series": report.dropped_series,
        "quarantined": report.quarantined,
        "quarantine_path": report.quarantine_path,
        "validation_report": report.report_path,
        "tracking_uri": tracker.uri,
    }


@task(name="backtest", **PURE)
def backtest_task(clean: pd.DataFrame, cfg: PipelineConfig, tracker: Any,
                  mapper: Callable | None = None):
    from deepcast.pipelines.backtest import run_backtest

    return run_backtest(clean, cfg, tracker, mapper)


@flow(name="backtest-pipeline", flow_run_name=lambda: _run_name("backtest"), log_prints=False)
def backtest_pipeline(pipeline: str, data: str | None = None, report_dir: str | None = None
                      ) -> dict[str, Any]:
    """Ingest -> validate -> rolling-origin backtest of every model -> track in MLflow."""
    from deepcast.pipelines.backtest import summary_records
    from deepcast.pipelines.tracking import Tracker

    cfg = load_config(pipeline)
    mapper = fan_out(cfg)
    source, _, clean, report = _validated(cfg, data, report_dir)
    tracker = Tracker(cfg.name)
    tags = _run_tags(cfg, "backtest", source, frame_sha256(clean))
    with tracker.run(f"backtest-{cfg.name}", tags=tags) as parent_id:
        tracker.log_params(resolved_config(cfg))
        result = backtest_task(clean, cfg, tracker, mapper)
        tracker.log_metrics({"backtest_seconds": result.seconds})
    bt = cfg.evaluation.backtest
    return {
        "pipeline": cfg.name,
        "parent_run_id": parent_id,
        "metric": cfg.evaluation.metric,
        "n_windows": bt.n_windows,
        "step": bt.step or cfg.features.horizon,
        "refit": bt.refit,
        "table": summary_records(result),
        "seconds": round(result.seconds, 2),
        "n_series": int(clean["unique_id"].nunique()),
        "dropped_series": report.dropped_series,
        "tracking_uri": tracker.uri,
    }


@task(name="tune", **PURE)
def tune_task(clean: pd.DataFrame, cfg: PipelineConfig, pipeline: str, tracker: Any,
              trials: int | None, output: str | None):
    from deepcast.pipelines.tune import run_tune

    return run_tune(clean, cfg, Path(pipeline), tracker, trials, output)


@flow(name="tune-pipeline", flow_run_name=lambda: _run_name("tune"), log_prints=False)
def tune_pipeline(pipeline: str, trials: int | None = None, output: str | None = None,
                  data: str | None = None, report_dir: str | None = None) -> dict[str, Any]:
    """Ingest -> validate -> hyperparameter search (nested run per trial) -> tuned YAML."""
    from deepcast.pipelines.tracking import Tracker

    cfg = load_config(pipeline)
    source, _, clean, _ = _validated(cfg, data, report_dir)
    tracker = Tracker(cfg.name)
    tags = _run_tags(cfg, "tune", source, frame_sha256(clean))
    with tracker.run(f"tune-{cfg.name}", tags=tags) as parent_id:
        tracker.log_params(resolved_config(cfg))
        result = tune_task(clean, cfg, pipeline, tracker, trials, output)
    return {
        "pipeline": cfg.name,
        "parent_run_id": parent_id,
        "model": cfg.tune.model if cfg.tune else "",
        "sampler": cfg.tune.sampler if cfg.tune else "",
        "trials": result.trials.to_dict(orient="records"),
        "best_params": result.best_params,
        "best_val_loss": result.best_value,
        "output": result.output,
        "seconds": round(result.seconds, 2),
        "tracking_uri": tracker.uri,
    }


@flow(name="batch-forecast", flow_run_name=lambda: _run_name("forecast"), log_prints=False)
def batch_forecast(pipeline: str, output: str, model: str = "champion",
                   data: str | None = None, report_dir: str | None = None,
                   future: str | None = None, report: str | None = None,
                   series: list[str] | None = None) -> dict[str, Any]:
    """Load ``models:/NAME@model`` -> validate the history (and the future covariates) ->
    forecast -> write atomically (-> the HTML report, with ``report``)."""
    from deepcast.pipelines.forecast import check_output_path
    from deepcast.pipelines.tracking import Tracker

    cfg = load_config(pipeline)
    check_output_path(output)
    if report:
        from deepcast.pipelines.report import check_report_path

        check_report_path(report)
    return _forecast(cfg, Tracker(cfg.name), model, output, _source(cfg, data), report_dir,
                     future, report=report, series=series)


def _forecast(cfg: PipelineConfig, tracker: Any, model: str, output: str, source: str | None,
              report_dir: str | None = None, future: str | None = None,
              raw: pd.DataFrame | None = None, report: str | None = None,
              series: list[str] | None = None) -> dict[str, Any]:
    """Forecast with a registered model from ``raw`` (default: ingest ``source``), write the
    file (and the HTML report, with ``report``); the ``forecast`` summary."""
    from deepcast.pipelines.forecast import (
        finish_forecast,
        future_rows,
        needs_future,
        split_history,
    )
    from deepcast.pipelines.modelling import user_frame

    ref, loaded = load_model_task(tracker, model)
    predictor = loaded.predictor
    if raw is None:
        raw = ingest_task(cfg.data, source)
    ahead = None
    if needs_future(predictor):
        raw, ahead = split_history(raw, ingest_future_task(cfg.data, future) if future
                                   else None)
    clean, validation = validate_task(raw, cfg, report_dir_for(cfg, report_dir),
                                   min_length=predictor.min_history)
    history = user_frame(clean, cfg)
    if ahead is not None:
        history = pd.concat([history, user_frame(future_rows(ahead, clean, predictor), cfg)],
                            ignore_index=True)
    if series:
        from deepcast.pipelines.report import check_series

        check_series(series, clean["unique_id"].unique())
    fc = predict_task(loaded, history, cfg.data.id_col)
    fc = finish_forecast(fc, ref.version, ref.run_id)
    path = write_task(fc, output, cfg.data.sql.url_env if cfg.data.sql else None)
    extra = {"report": report_task(report, fc, clean, tracker, ref, cfg, model, path,
                                   list(series or []))} if report else {}
    return {
        "pipeline": cfg.name,
        "model_uri": f"models:/{cfg.name}@{model}" if not model.isdigit() else ref.uri,
        "model_name": str(fc["model_name"].iloc[0]) if len(fc) else "",
        "model_version": ref.version,
        "run_id": ref.run_id,
        "output": path,
        "rows": len(fc),
        "series": int(fc["unique_id"].nunique()),
        "dropped_series": validation.dropped_series,
        **extra,
    }
