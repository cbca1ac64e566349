"""What a batch forecast is asked for (:class:`ForecastRequest`) and the steps it takes on
one frame of history -- validate, predict, fall back for short series -- shared by the
forecast into one file (:mod:`.forecast`) and the forecast into a folder, shard by shard
(:mod:`.forecast_shards`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from deepcast.features.schema import AUTO
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.fallback import Fallback, fallback_forecast
from deepcast.pipelines.runs.base import RunInputs, Steps, checked, read_future, report_dir


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


def fallback_of(cfg: PipelineConfig, raw: pd.DataFrame, dropped: dict[str, int],
              predictor: Any) -> Fallback | None:
    """Forecasts of the series validation dropped as too short for the model (None when
    ``data.fallback`` is none)."""
    if cfg.data.fallback == "none":
        return None
    freq = predictor.columns.freq
    return fallback_forecast(raw, list(dropped), freq, predictor.horizon,
                             cfg.data.season_length)


def history_of(cfg: PipelineConfig, inputs: RunInputs, request: ForecastRequest, steps: Steps,
               raw: pd.DataFrame, predictor: Any, panel: bool = True
               ) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """(what the model is given: history and future rows, under the column names the
    model was trained with; the validated history; the validation report). The YAML's
    names say how to read tonight's data, the model's how to hand it over, so a model
    trained before ``data.id_col`` (or the time or target column) was renamed still
    forecasts. ``panel`` False: ``raw`` is one shard."""
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
                                  min_length=predictor.min_history, screen_first=True,
                                  panel=panel)
    from deepcast.pipelines.levels import with_levels

    clean = with_levels(clean, cfg)
    history = user_frame(clean, cfg, predictor.columns)
    if ahead is not None:
        history = pd.concat([history, user_frame(future_rows(ahead, clean, predictor), cfg,
                                                 predictor.columns)], ignore_index=True)
    return history, clean, validation


def predict_series(model: Any, history: pd.DataFrame, id_col: str = "unique_id") -> pd.DataFrame:
    """The forecast, in shards of series (a hierarchy's reconciliation needs them all in
    one call)."""
    from deepcast.pipelines.forecast import SHARD_SERIES, predict_in_shards

    whole = getattr(model.predictor, "reconciler", None) is not None
    return predict_in_shards(model.predict, history, id_col,
                             max(history[id_col].nunique(), 1) if whole else SHARD_SERIES)
