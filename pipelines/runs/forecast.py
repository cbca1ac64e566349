"""The batch forecast job: a registered model's forecast of the validated history,
written atomically (and an HTML report), returned with its rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from deepcast.features.schema import AUTO
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.results import ForecastResult
from deepcast.pipelines.runs import store
from deepcast.pipelines.runs.base import (
    FROM_CONFIG,
    PLAIN,
    RunInputs,
    Steps,
    checked,
    read_data,
    read_future,
    report_dir,
)


@dataclass(frozen=True)
class ForecastRequest:
    """What to forecast with (``model``: an alias or a version number) and where the
    forecast goes: ``output`` (a file or ``sql://TABLE``; None: only returned), the HTML
    ``report`` plotting ``series``; ``future``: covariates for the forecast dates."""

    model: str = "champion"
    output: str | None = None
    future: pd.DataFrame | str | None = None
    report: str | None = None
    series: tuple[str, ...] = ()


CHAMPION_FORECAST = ForecastRequest()  # the champion's forecast, returned only


def forecast(cfg: PipelineConfig, inputs: RunInputs = FROM_CONFIG,
             request: ForecastRequest = CHAMPION_FORECAST, steps: Steps = PLAIN,
             raw: pd.DataFrame | None = None) -> ForecastResult:
    """Load the model -> validate the history (``raw`` when already ingested) and the
    future covariates -> forecast -> write atomically (-> the HTML report)."""
    from deepcast.pipelines.forecast import check_output_path, finish_forecast
    from deepcast.pipelines.report import check_report_path, check_series

    if request.output:
        check_output_path(request.output)
    if request.report:
        check_report_path(request.report)
    tracker = store.open_tracker(cfg)
    ref, model = steps.io("load-model", store.load_model, tracker, request.model)
    predictor = model.predictor
    if raw is None:
        raw = steps.io("ingest", read_data, cfg.data, inputs.given(cfg))
    history, clean, validation = _history(cfg, inputs, request, steps, raw, predictor)
    if request.series:
        check_series(list(request.series), clean["unique_id"].unique())
    fc = steps.run("predict", _predict, model, history, cfg.data.id_col)
    fc = finish_forecast(fc, ref.version, ref.run_id)
    path = steps.io("write-forecast", _write, fc, request.output,
                    cfg.data.sql.url_env if cfg.data.sql else None) if request.output else None
    report = steps.io("write-report", _report, request.report, fc, clean, tracker, ref, cfg,
                      request.model, path, list(request.series)) if request.report else None
    model = request.model
    return ForecastResult(
        pipeline=cfg.name,
        model_uri=f"models:/{cfg.name}@{model}" if not model.isdigit() else ref.uri,
        model_name=str(fc["model_name"].iloc[0]) if len(fc) else "",
        model_version=ref.version, run_id=ref.run_id, output=path, rows=len(fc),
        series=int(fc["unique_id"].nunique()), dropped_series=validation.dropped_series,
        report=report, forecast=fc)


def _history(cfg: PipelineConfig, inputs: RunInputs, request: ForecastRequest, steps: Steps,
             raw: pd.DataFrame, predictor: Any) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """(what the model is given: history and future rows in the YAML's columns, the
    validated history, the validation report)."""
    from deepcast.pipelines.forecast import future_rows, needs_future, split_history
    from deepcast.pipelines.modelling import user_frame

    if cfg.data.freq == AUTO:  # the model's step: what it was trained and dates with
        cfg = cfg.with_freq(predictor.columns.freq)
    ahead = None
    if needs_future(predictor):
        future = steps.io("ingest-future", read_future, cfg.data, request.future) \
            if request.future is not None else None
        raw, ahead = split_history(raw, future)
    clean, validation = steps.run("validate", checked, raw, cfg, report_dir(cfg, inputs),
                                  min_length=predictor.min_history)
    history = user_frame(clean, cfg)
    if ahead is not None:
        history = pd.concat([history, user_frame(future_rows(ahead, clean, predictor), cfg)],
                            ignore_index=True)
    return history, clean, validation


def _predict(model: Any, history: pd.DataFrame, id_col: str = "unique_id") -> pd.DataFrame:
    from deepcast.pipelines.forecast import predict_in_shards

    return predict_in_shards(model.predict, history, id_col)


def _write(fc: pd.DataFrame, output: str, url_env: str | None = None) -> str:
    from deepcast.pipelines.forecast import write_output

    return str(write_output(fc, output, url_env))


def _report(path: str, fc: pd.DataFrame, history: pd.DataFrame, tracker: Any, ref: Any,
            cfg: PipelineConfig, alias: str, output: str | None, series: list[str]) -> str:
    from deepcast.pipelines.report import render_report, write_report

    text = render_report(fc, history, store.training_info(tracker, ref), pipeline=cfg.name,
                         alias=alias, output=output or "", metric=cfg.evaluation.metric,
                         season_length=cfg.data.season_length, chosen=series)
    return str(write_report(path, text))
