"""Train stage: fit every model of the pipeline, score it on the holdout, track it.

One parent MLflow run per ``train``; one nested run per model with the same metric names
(``holdout_mae``, ``holdout_rmse``, ``holdout_smape``, ``holdout_mase``, ``skill_<metric>``)
so the MLflow UI compares them side by side.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataError, RunFailed
from features.scalers import SeriesScaler
from features.schema import DS, ID, Y
from features.windows import Panel, panel_from_frame, window_starts
from forecasting.base import TrainingData, TrainSettings, WindowSpec, build_forecaster
from forecasting.evaluate import holdout_forecast, score_holdout
from forecasting.metrics import skill
from forecasting.predictor import Predictor
from pipelines.config import ENTRY_MODELS, PipelineConfig
from pipelines.ingest import column_spec

log = logging.getLogger("deepcast")


@dataclass
class ModelResult:
    """One trained and scored model."""

    name: str
    family: str
    metrics: dict[str, float]
    run_id: str = ""
    model_uri: str = ""
    epochs: int = 0
    fit_seconds: float = 0.0
    predictor: Predictor | None = field(default=None, repr=False)


@dataclass
class TrainOutcome:
    """What a ``train`` produced: every model's scores and the best one."""

    parent_run_id: str
    metric: str
    models: list[ModelResult]
    reference: dict[str, float]  # seasonal naive holdout metrics
    data_sha256: str
    n_rows: int
    n_series: int

    @property
    def best(self) -> ModelResult:
        finite = [m for m in self.models if np.isfinite(m.metrics.get(self.metric, np.nan))]
        if not finite:
            raise RunFailed(f"no model produced a finite holdout {self.metric}")
        return min(finite, key=lambda m: m.metrics[self.metric])

    def table(self) -> pd.DataFrame:
        rows = [{"model": m.name, "type": m.family, **{k: m.metrics.get(k) for k in
                 ("mae", "rmse", "smape", "mase")},
                 f"skill_{self.metric}": m.metrics.get(f"skill_{self.metric}"),
                 "epochs": m.epochs, "fit_s": round(m.fit_seconds, 2)} for m in self.models]
        return pd.DataFrame(rows)


@dataclass
class Prepared:
    """Scaled panel and window positions for training and validation."""

    panel: Panel
    scaler: SeriesScaler
    scaled: Panel
    train_starts: np.ndarray
    val_starts: np.ndarray


def training_settings(cfg: PipelineConfig) -> TrainSettings:
    """The fitting options of the YAML's ``training`` section."""
    return TrainSettings(**cfg.training.model_dump(exclude={"val_size", "checkpoint"}))


def checkpoint_dir(cfg: PipelineConfig, label: str) -> Path | None:
    """Where a model's resumable checkpoint lives: ./mlruns/checkpoints/NAME/MODEL."""
    if not cfg.training.checkpoint:
        return None
    return Path.cwd() / "mlruns" / "checkpoints" / cfg.name / label


def prepare(df: pd.DataFrame, cfg: PipelineConfig) -> Prepared:
    """Fit the scaler on the training span (all but the holdout) and place the windows."""
    panel = panel_from_frame(df)
    n_train = panel.lengths - cfg.evaluation.test_size
    scaler = SeriesScaler(cfg.features.scaler).fit(panel, n_train)
    scaled = scaler.transform(panel)
    lookback, horizon = cfg.features.lookback, cfg.features.horizon
    train_end = panel.starts + n_train
    val_cut = train_end - cfg.val_size
    train_starts = window_starts(panel.offsets, lookback, horizon, stop=val_cut)
    val_starts = window_starts(panel.offsets, lookback, horizon, stop=train_end,
                               min_target_end=val_cut)
    if len(train_starts) == 0:
        raise DataError(
            f"no training windows: every series needs at least lookback + horizon + val_size "
            f"+ test_size = {lookback + horizon + cfg.val_size + cfg.evaluation.test_size} "
            f"points (longest has {int(panel.lengths.max(initial=0))})",
            hint="lower features.lookback / training.val_size / evaluation.test_size, "
            "or supply longer series",
        )
    return Prepared(panel, scaler, scaled, train_starts, val_starts)


def user_frame(df: pd.DataFrame, cfg: PipelineConfig) -> pd.DataFrame:
    """Canonical frame back in the YAML's column names (what the served model takes)."""
    d = cfg.data
    return df[[ID, DS, Y]].rename(columns={ID: d.id_col, DS: d.time_col, Y: d.target_col})


def fit_model(entry: Any, prep: Prepared, cfg: PipelineConfig, on_epoch=None
              ) -> tuple[Predictor, dict[str, list[float]], float]:
    """Build and fit one model of the YAML; return its predictor, history and fit time."""
    spec = WindowSpec(cfg.features.lookback, cfg.features.horizon, cfg.data.season_length)
    forecaster = build_forecaster(entry.type, entry.label, spec, entry.options())
    history: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    if forecaster.trainable:
        data = TrainingData(prep.scaled.values, prep.train_starts, prep.val_starts)
        history = forecaster.fit(data, training_settings(cfg), on_epoch,
                                 checkpoint_dir(cfg, entry.label))
    return Predictor(forecaster, prep.scaler, column_spec(cfg.data)), history, \
        time.perf_counter() - t0


def evaluate(predictor: Predictor, df: pd.DataFrame, cfg: PipelineConfig
             ) -> tuple[dict[str, float], pd.DataFrame]:
    """Holdout metrics through the predictor's public ``predict``."""
    fc = holdout_forecast(predictor.predict, user_frame(df, cfg), cfg.evaluation.test_size,
                          cfg.data.id_col, cfg.data.time_col)
    if fc["yhat"].isna().any() or not np.isfinite(fc["yhat"].to_numpy()).all():
        raise RunFailed(f"model {predictor.name!r} produced missing or non-finite forecasts",
                        hint="check the training loss curve; lower the learning rate")
    return score_holdout(fc, df, cfg.evaluation.test_size, cfg.data.season_length)


def train_models(df: pd.DataFrame, cfg: PipelineConfig, tracker, *, data_sha256: str,
                 context: dict[str, Any] | None = None) -> TrainOutcome:
    """Train, score and log every model inside the active parent run of ``tracker``."""
    parent_id = tracker.active_run_id()
    prep = prepare(df, cfg)
    metric = cfg.evaluation.metric
    n_series = prep.panel.n_series
    example = user_frame(df, cfg).groupby(cfg.data.id_col, sort=False).tail(
        cfg.features.lookback).head(cfg.features.lookback * min(2, n_series))

    reference_entry = next((m for m in cfg.models if m.type == "seasonal_naive"), None)
    ref_pred, _, _ = fit_model(reference_entry or ENTRY_MODELS["seasonal_naive"](
        type="seasonal_naive"),
                               prep, cfg)
    reference, _ = evaluate(ref_pred, df, cfg)

    results: list[ModelResult] = []
    for entry in cfg.models:
        tags = {"deepcast.model_type": entry.type, "deepcast.pipeline": cfg.name}
        with tracker.run(entry.label, nested=True, tags=tags) as run_id:
            tracker.log_params({"model": entry.model_dump(mode="json"),
                                "features": cfg.features.model_dump(mode="json"),
                                "training": cfg.training.model_dump(mode="json"),
                                "season_length": cfg.data.season_length,
                                "test_size": cfg.evaluation.test_size})

            def on_epoch(epoch: int, logs: dict[str, float]) -> None:
                tracker.log_metrics(logs, step=epoch)

            log.info("training %s (%s)", entry.label, entry.type)
            predictor, history, seconds = fit_model(entry, prep, cfg, on_epoch)
            scores, per_series = evaluate(predictor, df, cfg)
            scores[f"skill_{metric}"] = skill(scores[metric], reference[metric])
            tracker.log_metrics({f"holdout_{k}": v for k, v in scores.items()
                                 if not k.startswith("skill_")}
                                | {f"skill_{metric}": scores[f"skill_{metric}"],
                                   "fit_seconds": seconds,
                                   "epochs": len(history.get("loss", []))})
            tracker.log_frame(per_series, "holdout/per_series_metrics.csv")
            model_uri = tracker.log_predictor(predictor, example)
            results.append(ModelResult(entry.label, entry.type, scores, run_id, model_uri,
                                       len(history.get("loss", [])), seconds, predictor))
            log.info("%s: holdout %s = %.4f", entry.label, metric, scores[metric])

    outcome = TrainOutcome(parent_id, metric, results, reference, data_sha256, len(df), n_series)
    tracker.log_metrics({f"best_holdout_{metric}": outcome.best.metrics[metric],
                         f"seasonal_naive_holdout_{metric}": reference[metric]})
    tracker.set_tags({"deepcast.best_model": outcome.best.name})
    tracker.log_dict(outcome.table().to_dict(orient="records"), "leaderboard.json")
    return outcome
