"""Train stage: fit every model of the pipeline, score it on the holdout, track it.

One parent MLflow run per ``train``; one nested run per model with the same metric names
(``holdout_mae``, ``holdout_rmse``, ``holdout_smape``, ``holdout_mase``, ``skill_<metric>``)
so the MLflow UI compares them side by side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.covariates import CovariateEncoder, Covariates, CovariateSpec
from deepcast.features.errors import DataError, RunFailed
from deepcast.features.scalers import SeriesScaler
from deepcast.features.schema import DS, ID, Y, release_arrow_memory
from deepcast.features.windows import Panel, pad_panel, panel_from_frame, window_starts
from deepcast.forecasting import conformal
from deepcast.forecasting.base import (
    InputSpec,
    TrainingData,
    TrainSettings,
    WindowSpec,
    build_forecaster,
    families,
)
from deepcast.forecasting.evaluate import holdout_forecast, score_holdout, split_holdout
from deepcast.forecasting.metrics import seasonal_scale, skill
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines import plots, progress
from deepcast.pipelines.config import ENTRY_MODELS, PipelineConfig
from deepcast.pipelines.ingest import column_spec
from deepcast.pipelines.tracking import tags as tag

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
    reference_predictor: Predictor | None = field(default=None, repr=False)

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

    panel: Panel  # as observed
    scaler: SeriesScaler
    scaled: Panel  # scaled, short series left-padded with NaN
    train_starts: np.ndarray  # window starts in ``scaled``
    val_starts: np.ndarray
    encoder: CovariateEncoder | None = None
    covariates: Covariates | None = None  # aligned with ``scaled``


def training_settings(cfg: PipelineConfig) -> TrainSettings:
    """The fitting options of the YAML's ``training`` section."""
    return TrainSettings(**cfg.training.model_dump(exclude={"val_size", "checkpoint"}))


def checkpoint_dir(cfg: PipelineConfig, label: str) -> Path | None:
    """Where a model's resumable checkpoint lives: ./mlruns/checkpoints/NAME/MODEL."""
    if not cfg.training.checkpoint:
        return None
    return Path.cwd() / "mlruns" / "checkpoints" / cfg.name / label


def covariate_spec(cfg: PipelineConfig, df: pd.DataFrame) -> CovariateSpec:
    """The YAML's covariates; a static column is categorical when declared so, or (by
    default) when its values are not numbers."""
    d, f = cfg.data, cfg.features
    categorical = d.categorical
    if categorical is None:
        categorical = [c for c in d.static if not pd.api.types.is_numeric_dtype(df[c])]
    return CovariateSpec(static=tuple(d.static), past=tuple(d.past), future=tuple(d.future),
                         categorical=tuple(categorical), calendar=cfg.calendar,
                         id_embedding=f.id_embedding, embedding_dim=f.embedding_dim)


def prepare(df: pd.DataFrame, cfg: PipelineConfig, holdout: int | None = None) -> Prepared:
    """Fit the scaler and covariate encoder on the training span (all but the last
    ``holdout`` points, default ``evaluation.test_size``), pad short series
    (``data.short_series: pad``) and place the windows."""
    panel = panel_from_frame(df)
    test_size = cfg.evaluation.test_size if holdout is None else holdout
    n_train = panel.lengths - test_size
    scaler = SeriesScaler(cfg.features.scaler).fit(panel, n_train)
    lookback, horizon = cfg.features.lookback, cfg.features.horizon
    pads = np.zeros(panel.n_series, dtype=np.int64)
    if cfg.data.short_series == "pad":
        full = lookback + horizon + cfg.val_size + test_size
        pads[panel.lengths < full] = lookback - 1
    scaled = pad_panel(scaler.transform(panel), pads)
    spec = covariate_spec(cfg, df)
    encoder, covariates = None, None
    if not spec.empty:
        encoder = CovariateEncoder(spec, cfg.data.freq).fit(split_holdout(df, test_size)[0])
        covariates = encoder.transform(df).left_pad(panel.offsets, pads)
    train_end = scaled.ends - test_size
    val_cut = train_end - cfg.val_size
    train_starts = window_starts(scaled.offsets, lookback, horizon, stop=val_cut)
    val_starts = window_starts(scaled.offsets, lookback, horizon, stop=train_end,
                               min_target_end=val_cut)
    if len(train_starts) == 0:
        raise DataError(
            f"no training windows: every series needs at least lookback + horizon + val_size "
            f"+ test_size = {lookback + horizon + cfg.val_size + test_size} points, or "
            f"horizon + val_size + test_size + 1 = {cfg.min_padded_length} with "
            f"data.short_series: pad (longest has {int(panel.lengths.max(initial=0))})",
            hint="lower features.lookback / training.val_size / evaluation.test_size, "
            "use data.short_series: pad, or supply longer series",
        )
    release_arrow_memory()
    return Prepared(panel, scaler, scaled, train_starts, val_starts, encoder, covariates)


def input_spec(prep: Prepared) -> InputSpec:
    """The covariate inputs models of this pipeline are built for."""
    enc = prep.encoder
    if enc is None:
        return InputSpec()
    s = enc.spec
    return InputSpec(n_past=len(s.past), n_future=s.n_future, n_static=len(s.static_numeric),
                     cardinalities=tuple(enc.cardinalities), embedding_dim=s.embedding_dim,
                     n_series=len(enc.ids) + 1 if s.id_embedding else 0,
                     id_embedding=s.id_embedding)


def user_frame(df: pd.DataFrame, cfg: PipelineConfig) -> pd.DataFrame:
    """Canonical frame back in the YAML's column names (what the served model takes)."""
    d = cfg.data
    covariates = [c for c in (*d.static, *d.past, *d.future) if c in df.columns]
    return df[[ID, DS, Y, *covariates]].rename(
        columns={ID: d.id_col, DS: d.time_col, Y: d.target_col})


def serving_example(df: pd.DataFrame, cfg: PipelineConfig, n_series: int = 2
                    ) -> pd.DataFrame:
    """A small input in the served model's format (for its signature): the last lookback
    points of a few series, then ``horizon`` rows with the target left empty, which carry
    future covariates (and are ignored by models without them)."""
    f, d = cfg.features, cfg.data
    ids = df[ID].drop_duplicates().head(n_series)
    part = df[df[ID].isin(ids)].groupby(ID, sort=False).tail(f.lookback + f.horizon)
    part = part.assign(**{Y: part[Y].where(
        part.groupby(ID, sort=False).cumcount(ascending=False) >= f.horizon)})
    return user_frame(part.reset_index(drop=True), cfg).astype({d.target_col: "float64"})


def fit_model(entry: Any, prep: Prepared, cfg: PipelineConfig, on_epoch=None
              ) -> tuple[Predictor, dict[str, list[float]], float]:
    """Build and fit one model of the YAML; return its predictor, history and fit time."""
    spec = WindowSpec(cfg.features.lookback, cfg.features.horizon, cfg.data.season_length)
    forecaster = build_forecaster(entry.type, entry.label, spec, entry.options(),
                                  input_spec(prep) if families()[entry.type].trainable
                                  else None)
    history: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    if forecaster.trainable:
        data = TrainingData(prep.scaled.values, prep.train_starts, prep.val_starts,
                            prep.covariates, prep.scaled.offsets)
        history = forecaster.fit(data, training_settings(cfg), on_epoch,
                                 checkpoint_dir(cfg, entry.label))
    predictor = Predictor(forecaster, prep.scaler, column_spec(cfg.data), prep.encoder,
                          1 if cfg.data.short_series == "pad" else None)
    return predictor, history, time.perf_counter() - t0


def holdout_predictions(predictor: Predictor, df: pd.DataFrame, cfg: PipelineConfig
                        ) -> pd.DataFrame:
    """The holdout forecast (``unique_id, ds, yhat``) through the predictor's ``predict``."""
    d = cfg.data
    return holdout_forecast(predictor.predict, user_frame(df, cfg), cfg.evaluation.test_size,
                            d.id_col, d.time_col, d.target_col)


def evaluate(predictor: Predictor, df: pd.DataFrame, cfg: PipelineConfig,
             fc: pd.DataFrame | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Holdout metrics through the predictor's public ``predict`` (or of its holdout
    forecast ``fc`` when already made)."""
    if fc is None:
        fc = holdout_predictions(predictor, df, cfg)
    if fc["yhat"].isna().any() or not np.isfinite(fc["yhat"].to_numpy()).all():
        raise RunFailed(f"model {predictor.name!r} produced missing or non-finite forecasts",
                        hint="check the training loss curve; lower the learning rate")
    if cfg.evaluation.conformal:
        predictor.conformal = calibrate_on_holdout(fc, df, cfg, predictor.horizon)
    return score_holdout(fc, df, cfg.evaluation.test_size, cfg.data.season_length)


def calibrate_on_holdout(fc: pd.DataFrame, df: pd.DataFrame, cfg: PipelineConfig,
                         horizon: int) -> dict[str, list[float]]:
    """Conformal table from the holdout residuals: out of sample for a model fit on the
    training span. Each origin's ``horizon`` steps are one calibration row; steps the
    holdout does not reach reuse the widest calibrated step."""
    test_size = cfg.evaluation.test_size
    train, test = split_holdout(df, test_size)
    n = test[ID].nunique()
    resid = (test[Y].to_numpy(np.float64) - fc["yhat"].to_numpy(np.float64)).reshape(
        n, test_size)
    origins = -(-test_size // horizon)
    padded = np.full((n, origins * horizon), np.nan)
    padded[:, :test_size] = resid
    rows = padded.reshape(n * origins, horizon)
    panel = panel_from_frame(train)
    scale = np.repeat(seasonal_scale(panel, panel.lengths, cfg.data.season_length), origins)
    table = conformal.calibrate(rows, scale, cfg.evaluation.conformal)
    for level, q in table.items():
        reached = [x for x in q if np.isfinite(x)]
        table[level] = [x if np.isfinite(x) else max(reached, default=float("nan"))
                        for x in q]
    return table


Mapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]
"""Runs ``fn`` on every job and returns the results in job order, possibly in other
processes (the Dask fan-out of ``flows``); jobs and results are plain data."""


@dataclass(frozen=True)
class ModelJob:
    """One model of a ``train`` as plain data: what a worker process needs to fit, score and
    log it as a nested run of the parent run (no live objects, no open connections)."""

    entry: Any
    df: pd.DataFrame
    cfg: PipelineConfig
    reference: dict[str, float]  # seasonal naive holdout metrics (for skill)
    parent_run_id: str
    tracking_uri: str
    experiment: str

    @property
    def label(self) -> str:
        return self.entry.label


def train_model(job: ModelJob, tracker=None, prep: Prepared | None = None) -> ModelResult:
    """Fit, score and log one model; the one per-model function of the serial run and of
    the Dask fan-out. In a worker (no ``tracker``) it opens its own client on the same
    store, prepares the data itself (TensorFlow is imported and seeded in that process) and
    returns the model URI, run id and metrics only, not the fitted model."""
    from deepcast.pipelines.tracking import Tracker

    local = tracker is not None
    tracker = tracker if local else Tracker(job.experiment, job.tracking_uri)
    prep = prep if prep is not None else prepare(job.df, job.cfg)
    entry, cfg = job.entry, job.cfg
    result = _tracked_fit(entry.label, entry.type, {"model": entry.model_dump(mode="json")},
                          lambda on_epoch: fit_model(entry, prep, cfg, on_epoch),
                          job, tracker)
    return result if local else replace(result, predictor=None)


def _tracked_fit(label: str, family: str, params: dict[str, Any], build, job: ModelJob,
                 tracker) -> ModelResult:
    """One nested run: fit (``build(on_epoch)``), score on the holdout, log, return."""
    df, cfg, metric = job.df, job.cfg, job.cfg.evaluation.metric
    common = {"features": cfg.features.model_dump(mode="json"),
              "training": cfg.training.model_dump(mode="json"),
              "season_length": cfg.data.season_length, "test_size": cfg.evaluation.test_size}
    tags = {tag.MODEL_TYPE: family, tag.PIPELINE: cfg.name}
    with tracker.run(label, nested=True, tags=tags, parent_run_id=job.parent_run_id) as run_id:
        tracker.log_params({**params, **common})
        log.info("training %s (%s)", label, family)
        trainable = family in families() and families()[family].trainable
        with progress.task(f"train {label}", cfg.training.max_epochs if trainable
                           else 1) as advance:

            def on_epoch(epoch: int, logs: dict[str, float]) -> None:
                tracker.log_metrics(logs, step=epoch)
                advance(1)

            predictor, history, seconds = build(on_epoch)
        fc = holdout_predictions(predictor, df, cfg)
        scores, per_series = evaluate(predictor, df, cfg, fc)
        scores[f"skill_{metric}"] = skill(scores[metric], job.reference[metric])
        epochs = len(history.get("loss", []))
        tracker.log_metrics({f"holdout_{k}": v for k, v in scores.items()
                             if not k.startswith("skill_")}
                            | {f"skill_{metric}": scores[f"skill_{metric}"],
                               "fit_seconds": seconds, "epochs": epochs})
        tracker.log_frame(per_series, "holdout/per_series_metrics.csv")
        log_model_plots(tracker, predictor, df, fc, history, per_series, cfg)
        model_uri = tracker.log_predictor(predictor, serving_example(df, cfg))
        log.info("%s: holdout %s = %.4f", label, metric, scores[metric])
        return ModelResult(label, family, scores, run_id, model_uri, epochs, seconds,
                           predictor)


def _with_predictor(result: ModelResult, tracker) -> ModelResult:
    """``result`` with its fitted model, loaded from its URI when it was trained elsewhere."""
    if result.predictor is None:
        result.predictor = tracker.registry.load_logged(result.model_uri).predictor
    return result


def train_models(df: pd.DataFrame, cfg: PipelineConfig, tracker, *, data_sha256: str,
                 context: dict[str, Any] | None = None, mapper: Mapper | None = None
                 ) -> TrainOutcome:
    """Train, score and log every model inside the active parent run of ``tracker``: one
    after the other here, or through ``mapper`` (each model in a worker process)."""
    parent_id = tracker.active_run_id()
    tracker.set_tags({tag.DATA_START: str(df[DS].min()), tag.DATA_END: str(df[DS].max())})
    prep = prepare(df, cfg)
    metric = cfg.evaluation.metric

    reference_entry = next((m for m in cfg.models if m.type == "seasonal_naive"), None)
    ref_pred, _, _ = fit_model(reference_entry or ENTRY_MODELS["seasonal_naive"](
        type="seasonal_naive"), prep, cfg)
    reference, _ = evaluate(ref_pred, df, cfg)

    jobs = [ModelJob(entry, df, cfg, reference, parent_id, tracker.uri, tracker.experiment)
            for entry in cfg.models]
    if mapper is None:
        results = [train_model(job, tracker, prep) for job in jobs]
    else:
        results = mapper(train_model, jobs)
        members = {m for spec in cfg.ensemble for m in spec.members}
        results = [_with_predictor(r, tracker) if r.name in members else r for r in results]
    shared = replace(jobs[0], entry=None)  # data, config and parent run of the ensembles
    for spec in cfg.ensemble:
        results.append(_tracked_fit(
            spec.name, f"ensemble-{spec.method}", {"ensemble": spec.model_dump(mode="json")},
            lambda on_epoch, spec=spec: fit_ensemble(spec, results, df, prep, cfg), shared,
            tracker))

    outcome = TrainOutcome(parent_id, metric, results, reference, data_sha256, len(df),
                           prep.panel.n_series, ref_pred)
    _with_predictor(outcome.best, tracker)  # the promotion gate scores it
    tracker.log_metrics({f"best_holdout_{metric}": outcome.best.metrics[metric],
                         f"seasonal_naive_holdout_{metric}": reference[metric]})
    tracker.set_tags({tag.BEST_MODEL: outcome.best.name})
    tracker.log_files({"skill_vs_seasonal_naive.png": plots.skill_figure(
        outcome.table(), metric, outcome.best.name)}, "plots")
    tracker.log_dict(outcome.table().to_dict(orient="records"), "leaderboard.json")
    return outcome


FULL_PREDICT_SERIES = 5000  # up to this many series, plots forecast them all (see below)


def log_model_plots(tracker, predictor: Predictor, df: pd.DataFrame, fc: pd.DataFrame,
                    history: dict[str, list[float]], per_series: pd.DataFrame,
                    cfg: PipelineConfig) -> None:
    """Log a model's plots to its run under ``plots/``: a sample of series (largest, worst,
    seeded others) with history, holdout forecast and future forecast with bands; the loss
    curves; the error by horizon step."""
    from deepcast.pipelines.forecast import needs_future

    t0 = time.perf_counter()
    metric, label = cfg.evaluation.metric, predictor.name
    train, test = split_holdout(df, cfg.evaluation.test_size)
    holdout = test[[ID, DS, Y]].assign(yhat=fc["yhat"].to_numpy())
    series = plots.pick_series(df, per_series, metric=metric, seed=cfg.training.seed)
    ahead = holdout.iloc[:0]
    if not needs_future(predictor):  # future covariates are unknown at training time
        ids = [uid for uid, _ in series]
        # every series when few: the batch shape of the holdout forecast, so no retrace
        sample = df if df[ID].nunique() <= FULL_PREDICT_SERIES else df[df[ID].isin(ids)]
        ahead = predictor.predict(user_frame(sample, cfg))
        ahead = ahead[ahead[ID].isin(ids)]
    files = {"series.png": plots.series_figure(
        train, ahead, series, holdout, cfg.data.season_length, cfg.features.horizon,
        f"{label}: history, holdout forecast and forecast")}
    loss = plots.loss_figure(history, f"{label}: loss per epoch")
    if loss is not None:
        files["loss.png"] = loss
    panel = panel_from_frame(train)
    scale = pd.Series(seasonal_scale(panel, panel.lengths, cfg.data.season_length),
                      index=panel.ids)
    errors = plots.horizon_errors(holdout, scale, cfg.features.horizon)
    files["error_by_horizon.png"] = plots.horizon_figure(
        errors, f"{label}: error by horizon step")
    tracker.log_files(files, "plots")
    log.debug("plots of %s took %.2f s", label, time.perf_counter() - t0)


def fit_ensemble(spec: Any, results: list[ModelResult], df: pd.DataFrame, prep: Prepared,
                 cfg: PipelineConfig) -> tuple[Predictor, dict[str, list[float]], float]:
    """Build one ``ensemble:`` entry from the trained models (or, for bagging, train its
    members); weights come from a backtest of the members on the training span only."""
    from deepcast.forecasting.ensemble import (
        build_ensemble,
        inverse_error_weights,
        stacking_weights,
    )

    t0 = time.perf_counter()
    if spec.method == "bagging":
        members = []
        for i in range(spec.n_members):
            entry = spec.model.model_copy(update={"name": f"{spec.name}_{i}"})
            seeded = cfg.model_copy(update={"training": cfg.training.model_copy(
                update={"seed": cfg.training.seed + i})})
            members.append(fit_model(entry, prep, seeded)[0].forecaster)
        weights = None
    else:
        by_name = {r.name: r for r in results}
        members = [by_name[m].predictor.forecaster for m in spec.members]
        weights = None
        if spec.method in ("weighted", "stacking"):
            entries = {m.label: m for m in cfg.models}
            y, f, scale = member_backtest([entries[m] for m in spec.members], df, cfg)
            if spec.method == "weighted":
                errors = np.nanmean(np.abs(y[..., None] - f) / scale[:, None, None],
                                    axis=(0, 1))  # MASE of each member
                weights = inverse_error_weights(errors, cfg.features.horizon)
            else:
                weights = stacking_weights(y / scale[:, None], f / scale[:, None, None])
    ensemble = build_ensemble(spec.name, spec.method, members, weights)
    predictor = Predictor(ensemble, prep.scaler, column_spec(cfg.data), prep.encoder,
                          1 if cfg.data.short_series == "pad" else None)
    return predictor, {}, time.perf_counter() - t0


def member_backtest(entries: list[Any], df: pd.DataFrame, cfg: PipelineConfig
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-sample forecasts of ``entries`` on backtest cut-offs inside the training span
    (the holdout is never seen): (y (n, h), member forecasts (n, h, M), scale (n,)), one row
    per series x cut-off; ``scale`` is the series' seasonal naive MAE before the cut-off.
    One fit per member (``refit: false``); series too short for the first cut-off take no
    part in fitting the weights."""
    from deepcast.pipelines.backtest import run_backtest

    train, _ = split_holdout(df, cfg.evaluation.test_size)
    bt, h = cfg.evaluation.backtest, cfg.features.horizon
    lengths = train.groupby(ID, sort=False).size()
    first_cut = lengths - h - (bt.n_windows - 1) * (bt.step or h)
    long_enough = lengths.index[first_cut >= cfg.min_train_length]
    if len(long_enough) == 0:
        raise DataError(
            "no series is long enough for the backtest that weighs the ensemble members "
            f"({bt.n_windows} windows before the holdout)",
            hint="lower evaluation.backtest.n_windows / step, or use method mean")
    train = train[train[ID].isin(long_enough)].reset_index(drop=True)
    inner = cfg.model_copy(update={
        "models": entries, "ensemble": [],
        "evaluation": cfg.evaluation.model_copy(update={
            "conformal": [], "backtest": bt.model_copy(update={"refit": False})})})
    result = run_backtest(train, inner)
    y = result.forecasts[entries[0].label]["y"].to_numpy(np.float64)
    f = np.stack([result.forecasts[e.label]["yhat"].to_numpy(np.float64) for e in entries],
                 axis=-1).reshape(-1, h, len(entries))
    scale = result.scale.reshape(-1)
    return y.reshape(-1, h), f, np.where(scale > 0, scale, np.nan)
