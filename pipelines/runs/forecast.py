"""The batch forecast job: a registered model's forecast of the validated history,
written atomically together with its HTML report (both or neither), returned with its
rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from deepcast.features.schema import AUTO
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.fallback import Fallback, fallback_forecast, with_fallback
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
class ForecastOptions:
    """What a forecast writes besides the forecast file: the HTML ``report`` (plotting
    ``series`` besides the largest and worst ones); and whether CSV text cells that a
    spreadsheet would run as a formula get a leading ``'`` (``formula_guard``)."""

    report: str | None = None
    series: tuple[str, ...] = ()
    formula_guard: bool = True


@dataclass(frozen=True)
class ForecastRequest:
    """What to forecast with (``model``: an alias or a version number) and where the
    forecast goes: ``output`` (a file or ``sql://TABLE``; None: only returned);
    ``future``: covariates for the forecast dates; ``options``: the report and the
    formula guard."""

    model: str = "champion"
    output: str | None = None
    future: pd.DataFrame | str | None = None
    options: ForecastOptions = ForecastOptions()


CHAMPION_FORECAST = ForecastRequest()  # the champion's forecast, returned only


def forecast(cfg: PipelineConfig, inputs: RunInputs = FROM_CONFIG,
             request: ForecastRequest = CHAMPION_FORECAST, steps: Steps = PLAIN,
             raw: pd.DataFrame | None = None) -> ForecastResult:
    """Load the model -> validate the history (``raw`` when already ingested) and the
    future covariates -> forecast (-> render the HTML report) -> write the forecast and
    the report together: both change, or neither does."""
    from deepcast.pipelines.forecast import check_output_path, finish_forecast
    from deepcast.pipelines.report import check_report_path, check_series

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
    history, clean, validation = _history(cfg, inputs, request, steps, raw, predictor)
    if options.series:
        check_series(list(options.series), clean["unique_id"].unique())
    fc = steps.run("predict", _predict, model, history, cfg.data.id_col)
    fallback = _fallback(cfg, raw, validation.dropped_series, predictor)
    fc = finish_forecast(with_fallback(fc, fallback), ref.version, ref.run_id)
    # what the reader should know: the history's warnings (stale series, filled gaps),
    # the series forecast by the fallback and the model's conformal levels left out
    notes = [*validation.warnings, *(fallback.notes(predictor.min_history) if fallback
                                     else []), *predictor.conformal_notes]
    html = _render(cfg, request, steps, fc, clean, tracker, ref, notes) \
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


def _fallback(cfg: PipelineConfig, raw: pd.DataFrame, dropped: dict[str, int],
              predictor: Any) -> Fallback | None:
    """Forecasts of the series validation dropped as too short for the model (None when
    ``data.fallback`` is none)."""
    if cfg.data.fallback == "none":
        return None
    freq = predictor.columns.freq
    return fallback_forecast(raw, list(dropped), freq, predictor.horizon,
                             cfg.data.season_length)


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
    # the history is screened with pandas; GE runs (and reports) when a check fails
    clean, validation = steps.run("validate", checked, raw, cfg, report_dir(cfg, inputs),
                                  min_length=predictor.min_history, screen_first=True)
    from deepcast.pipelines.levels import with_levels

    clean = with_levels(clean, cfg)
    history = user_frame(clean, cfg)
    if ahead is not None:
        history = pd.concat([history, user_frame(future_rows(ahead, clean, predictor), cfg)],
                            ignore_index=True)
    return history, clean, validation


def _predict(model: Any, history: pd.DataFrame, id_col: str = "unique_id") -> pd.DataFrame:
    """The forecast, in shards of series (a hierarchy's reconciliation needs them all in
    one call)."""
    from deepcast.pipelines.forecast import SHARD_SERIES, predict_in_shards

    whole = getattr(model.predictor, "reconciler", None) is not None
    return predict_in_shards(model.predict, history, id_col,
                             max(history[id_col].nunique(), 1) if whole else SHARD_SERIES)


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
