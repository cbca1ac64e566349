"""The batch forecast job: a registered model's forecast of the validated history,
written atomically together with its HTML report (both or neither), returned with its
rows."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deepcast.features.schema import ID
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.fallback import with_fallback
from deepcast.pipelines.results import ForecastResult
from deepcast.pipelines.runs import store
from deepcast.pipelines.runs.base import FROM_CONFIG, PLAIN, RunInputs, Steps, read_data
from deepcast.pipelines.runs.forecast_steps import (
    CHAMPION_FORECAST,
    ForecastOptions,
    ForecastRequest,
    fallback_of,
    history_of,
    predict_series,
)

__all__ = ["CHAMPION_FORECAST", "ForecastOptions", "ForecastRequest", "forecast"]

def forecast(cfg: PipelineConfig, inputs: RunInputs = FROM_CONFIG,
             request: ForecastRequest = CHAMPION_FORECAST, steps: Steps = PLAIN,
             raw: pd.DataFrame | None = None) -> ForecastResult:
    """Load the model -> validate the history (``raw`` when already ingested) and the
    future covariates -> forecast (-> render the HTML report) -> write the forecast and
    the report together: both change, or neither does."""
    from deepcast.pipelines.forecast import check_output_path, finish_forecast
    from deepcast.pipelines.forecast_folder import is_folder_output
    from deepcast.pipelines.report import check_report_path, check_series

    if is_folder_output(request.output):
        from deepcast.pipelines.runs.forecast_shards import forecast_folder

        return forecast_folder(cfg, inputs, request, steps, raw)
    options = request.options
    if request.output:
        check_output_path(request.output)
    if options.report:
        check_report_path(options.report)
    tracker = store.open_tracker(cfg)
    ref, model = steps.io("load-model", store.load_model, tracker, request.model)
    predictor = model.predictor
    if raw is None:
        raw = steps.io("ingest", read_data, cfg.data, inputs.given(cfg))
    history, clean, validation = history_of(cfg, inputs, request, steps, raw, predictor)
    fallback = fallback_of(cfg, raw, validation.dropped_series, predictor)
    # the series the fallback forecasts (dropped as too short) are in the forecast too
    by_fallback = fallback.history if fallback else clean.iloc[:0]
    if options.series:
        check_series(list(options.series), [*clean[ID].unique(), *by_fallback[ID].unique()],
                     dropped=validation.dropped_series)
    fc = steps.run("predict", predict_series, model, history, predictor.columns.id_col)
    fc = finish_forecast(with_fallback(fc, fallback, predictor.name),
                         ref.version, ref.run_id)
    # what the reader should know: the history's warnings (stale series, filled gaps),
    # the series forecast by the fallback and the model's conformal levels left out
    notes = [*validation.warnings, *(fallback.notes(predictor.min_history) if fallback
                                     else []), *predictor.conformal_notes,
             *(predictor.encoder.unseen_notes(predictor.encoder.unseen(clean))
               if predictor.encoder is not None else [])]
    # the report's history: the validated rows, and those each fallback forecast came from
    shown = pd.concat([clean, by_fallback], ignore_index=True) \
        if len(by_fallback) and options.report else clean
    html = _render(cfg, request, steps, fc, shown, tracker, ref, notes) \
        if options.report else None
    url_env = cfg.data.sql.url_env if cfg.data.sql else None
    path, report = steps.io("write-forecast", _write, fc, request.output, options, html,
                            url_env) if request.output or html is not None else (None, None)
    model = request.model
    return ForecastResult(
        pipeline=cfg.name,
        model_uri=f"models:/{cfg.name}@{model}" if not model.isdigit() else ref.uri,
        model_name=str(fc["model_name"].iloc[0]) if len(fc) else "",
        model_version=ref.version, run_id=ref.run_id, output=path, rows=len(fc),
        series=int(fc["unique_id"].nunique()), dropped_series=validation.dropped_series,
        report=report, forecast=fc, notes=notes,
        fallback_series=fallback.n_series if fallback else 0)


def _render(cfg: PipelineConfig, request: ForecastRequest, steps: Steps, fc: pd.DataFrame,
            history: pd.DataFrame, tracker: Any, ref: Any, notes: list[str]) -> str:
    """The report's HTML (nothing written yet): the version's training runs read back,
    then rendered."""
    from deepcast.pipelines.forecast import check_output_path
    from deepcast.pipelines.report import ReportSettings, render_report

    info = steps.io("read-training-info", store.training_info, tracker, ref)
    settings = ReportSettings(
        pipeline=cfg.name, alias=request.model, metric=cfg.evaluation.metric,
        output=str(check_output_path(request.output)) if request.output else "",
        season_length=cfg.data.season_length, chosen=tuple(request.options.series),
        notes=tuple(notes))
    return steps.run("render-report", render_report, fc, history, info, settings)


def _write(fc: pd.DataFrame, output: str | None, options: ForecastOptions, html: str | None,
           url_env: str | None = None) -> tuple[str | None, str | None]:
    """(forecast, report) as written: every file to a temp file first, renamed only
    when all are written."""
    from deepcast.pipelines.forecast import write_files, write_output
    from deepcast.pipelines.report import report_file

    also = [report_file(options.report, html)] if options.report and html is not None else []
    if output:
        path = str(write_output(fc, output, url_env, options.formula_guard, also))
    else:
        path = None
        write_files(also)
    return path, (str(also[0][0]) if also else None)
