"""Train stage: fit every model of the pipeline, score it on the holdout, track it.

One parent MLflow run per ``train``; one nested run per model with the same metric names
(``holdout_mae``, ``holdout_rmse``, ``holdout_smape``, ``holdout_mase``, ``skill_<metric>``)
so the MLflow UI compares them side by side. The frame is prepared once
(:func:`deepcast.pipelines.modelling.prepare`): that one :class:`PreparedData` serves the
seasonal naive reference, every model, the ensembles and the plots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepcast.features.schema import DS
from deepcast.forecasting.crossval import SpanBacktest, ensemble_backtest
from deepcast.forecasting.metrics import skill
from deepcast.forecasting.models import families
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines import plots, progress
from deepcast.pipelines.artifacts import log_model_plots, log_model_tables, serving_example
from deepcast.pipelines.budget import Budget, costly
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.ensembles import MemberBacktests, fit_ensemble
from deepcast.pipelines.levels import attach_reconciler
from deepcast.pipelines.model_run import (
    log_convergence,
    log_leaderboard,
    log_notes,
    log_served,
    log_windows,
    model_settings,
)
from deepcast.pipelines.modelling import (
    Mapper,
    ModelResult,
    PreparedData,
    checkpoint_dir,
    evaluate,
    fit_model,
    holdout_predictions,
    prepare,
    training_settings,
)
from deepcast.pipelines.selection import (
    Choice,
    choose,
    model_backtest,
    selection_windows,
    window_scores,
)
from deepcast.pipelines.tracking import tags as tag
from deepcast.pipelines.tracking.datasets import RunDataset, run_datasets
from deepcast.pipelines.warm_start import (
    WarmPlan,
    keep_selection_fit,
    record_seen,
    selection_start_for,
    start_verdict,
    warm_plan,
    warm_start_for,
)

if TYPE_CHECKING:  # annotations only: mlflow is imported where a run needs it
    from deepcast.pipelines.tracking import Tracker

log = logging.getLogger("deepcast")


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
    holdout_origins: int = 0  # forecast origins per series in the holdout the scores rest on
    holdout_size: int = 0  # points per series the scores rest on (evaluation.test_size)
    skipped: tuple[str, ...] = ()  # models and ensembles not trained: auto.time_limit spent
    time_limit: float | None = None
    selection_windows: int = 0  # backtest windows inside the training span (0: holdout only)
    warm: WarmPlan | None = None  # the run's warm start (training.warm_start)
    prefer_ensemble: float = 0.0  # evaluation.prefer_ensemble (paired standard errors)
    #: whether ``evaluation.selection: backtest`` would score more windows (not from shards)
    backtestable: bool = True

    @property
    def choice(self) -> Choice:
        """The model served and why (:func:`choose`, ``prefer_ensemble``)."""
        return choose(self.models, self.metric, self.prefer_ensemble)

    @property
    def best(self) -> ModelResult:
        """The model served (:attr:`choice`)."""
        return self.choice.model

    def table(self) -> pd.DataFrame:
        rows = [{"model": m.name, "type": m.family, **{k: m.metrics.get(k) for k in
                 ("mae", "rmse", "smape", "mase")},
                 f"skill_{self.metric}": m.metrics.get(f"skill_{self.metric}"),
                 f"select_{self.metric}": round(m.selection_score(self.metric), 4),
                 "windows": len(m.selection_scores),
                 f"{self.metric}_sd": _spread(m.selection_scores),
                 "epochs": m.epochs, "converged": m.converged,
                 "fit_s": round(m.fit_seconds, 2),
                 **({"start": m.start} if self.warm else {})} for m in self.models]
        # quantile models' scores, when there are any (others get an empty cell)
        extra = dict.fromkeys(k for m in self.models for k in m.metrics
                              if k.startswith(("scaled_crps", "wql", "coverage_q")))
        for row, m in zip(rows, self.models, strict=True):
            row.update({k: m.metrics.get(k) for k in extra})
        return pd.DataFrame(rows)

    def notes(self) -> list[str]:
        """What the scores and the choice rest on (windows and points), one line per model
        that stopped at max_epochs while still improving, and per conformal level a model
        left out for too few calibration residuals."""
        thin = self._basis()
        served = self.choice.note(self.metric)
        thin += [served] if served else []
        if self.skipped:
            thin.append(f"auto.time_limit ({self.time_limit:g} s) was spent: not trained: "
                        f"{', '.join(self.skipped)}")
        if self.warm is not None:
            warm = sum(m.start == "warm" for m in self.models)
            thin.append(f"training.warm_start: {self.warm.note}; {warm} of "
                        f"{sum(bool(m.start) for m in self.models)} neural models started "
                        "from its weights" + (" (each selection fit's own start is in the "
                                              "log and its run's tags)"
                                              if self.selection_windows else ""))
        return thin + [f"{m.name}: not converged: {m.convergence}" for m in self.models
                       if m.converged is False] + [f"{m.name}: {note}" for m in self.models
                                                   for note in m.notes]

    def _basis(self) -> list[str]:
        """What the scores and the choice rest on: origins, windows, points."""
        points = f"{self.n_series} series x {self.holdout_size} points = " \
            f"{self.n_series * self.holdout_size} points per model"
        origins = f"{self.holdout_origins} forecast origin" + "s" * (self.holdout_origins > 1)
        more = "evaluation.selection: backtest, or " if self.backtestable else ""
        if not self.selection_windows:
            return [
                "the holdout scores, and the choice of the best model, rest on one forecast "
                f"origin per series ({points}; evaluation.test_size = one horizon): a noisy "
                f"estimate; {more}a test_size of 2-3 horizons, scores every model on more "
                "windows"] if self.holdout_origins == 1 else [
                f"the holdout scores, and the choice of the best model, rest on {origins} "
                f"per series ({points}); {self.metric}_sd is the spread of a model's score "
                f"over the origins (MLflow: holdout_{self.metric}_by_origin)"]
        backtested = [m.backtest for m in self.models if m.backtest is not None]
        rows = max((b.n_series for b in backtested), default=0)
        h = backtested[0].y.shape[1] if backtested else 0
        return [f"the holdout scores rest on {origins} per series ({points})",
                f"the best model is chosen on select_{self.metric}: the mean over "
                f"{self.selection_windows} backtest windows inside the training span ({rows} "
                f"series x {self.selection_windows * h} points) and the holdout's {origins}; "
                f"{self.metric}_sd is its spread over those windows (MLflow: "
                f"backtest_{self.metric}_by_window, holdout_{self.metric}_by_origin)",
                *(f"{m.name}: chosen on the holdout only (no backtest)" for m in self.models
                  if m.backtest is None)]


@dataclass(frozen=True)
class ModelJob:
    """One model of a ``train`` as plain data: what a worker process needs to fit, score and
    log it as a nested run of the parent run (no live objects, no open connections)."""

    entry: Any
    prep: PreparedData  # the run's data, prepared once (shipped as is to a worker)
    cfg: PipelineConfig
    reference: dict[str, float]  # seasonal naive holdout metrics (for skill)
    example: pd.DataFrame  # input example of the served model's signature
    parent_run_id: str
    tracking_uri: str
    experiment: str
    datasets: tuple[RunDataset, ...] = ()  # what the model runs link (training, holdout)
    windows: int = 0  # selection backtest windows inside the training span (0: none)
    warm: WarmPlan | None = None  # tonight's warm start (training.warm_start)

    @property
    def label(self) -> str:
        return self.entry.label


def train_model(job: ModelJob, tracker: Tracker | None = None) -> ModelResult:
    """Fit, score and log one model; the one per-model function of the serial run and of
    the Dask fan-out. In a worker (no ``tracker``) it opens its own client on the same
    store (TensorFlow is imported and seeded in that process) and returns the model URI,
    run id and metrics only, not the fitted model."""
    from deepcast.pipelines.tracking import Tracker

    local = tracker is not None
    tracker = tracker if local else Tracker(job.experiment, job.tracking_uri)
    entry, cfg = job.entry, job.cfg
    source = job.warm.source if job.warm is not None else None

    def start(forecaster: Any) -> Any:
        return warm_start_for(source, entry.label, forecaster, job.prep, tracker)

    def start_selection(forecaster: Any, prep: Any) -> Any:
        return selection_start_for(source, entry.label, forecaster, prep, tracker)

    result = _tracked_fit(entry.label, entry.type, {"model": entry.model_dump(mode="json")},
                          lambda on_epoch: fit_model(entry, job.prep, training_settings(cfg),
                                                     on_epoch, checkpoint_dir(cfg, entry.label),
                                                     start),
                          job, tracker,
                          lambda: model_backtest(entry, job.prep, cfg, job.windows,
                                                 start_selection, keep=job.warm is not None))
    return result if local else replace(result, predictor=None)


def _tracked_fit(label: str, family: str, params: dict[str, Any], build, job: ModelJob,
                 tracker: Tracker, select: Callable[[], SpanBacktest | None]) -> ModelResult:
    """One nested run: backtest (``select()``: the training span's windows, or None), fit
    (``build(on_epoch)``), score on the holdout and those windows, calibrate, log."""
    prep, cfg, metric = job.prep, job.cfg, job.cfg.evaluation.metric
    tags = {tag.MODEL_TYPE: family, tag.PIPELINE: cfg.name}
    with tracker.run(label, nested=True, tags=tags, parent_run_id=job.parent_run_id) as run_id:
        settings = model_settings(cfg, params)
        tracker.log_params(settings)
        tracker.log_inputs(job.datasets)
        log.info("training %s (%s)", label, family)
        backtest = select()  # inside the run: a failure is the model's, on its run
        backtest = keep_selection_fit(label, backtest, job.warm, tracker)
        trainable = family in families() and families()[family].trainable
        with progress.task(f"train {label}", cfg.training.max_epochs if trainable
                           else 1) as advance:

            def on_epoch(epoch: int, logs: dict[str, float]) -> None:
                tracker.log_metrics(logs, step=epoch)
                advance(1)

            predictor, history, seconds = build(on_epoch)
        began = start_verdict(job.warm, predictor.forecaster)
        record_seen(prep, tracker, predictor.forecaster)  # warm start on or off
        if began.tags:
            tracker.set_tags(began.tags)
            log.info("%s: %s", label, began.note)
        backtest = attach_reconciler(predictor, prep.df, cfg, backtest)  # coherent windows
        fc = holdout_predictions(predictor, prep)
        scores, per_series = evaluate(predictor, prep, cfg.evaluation.conformal, fc, backtest)
        scores[f"skill_{metric}"] = skill(scores[metric], job.reference[metric])
        by_window = window_scores(fc, prep.require_holdout(), prep.window.horizon, metric)
        by_backtest = backtest.scores(metric) if backtest is not None else []
        epochs = len(history.get("loss", []))
        verdict = log_convergence(label, history, cfg.training.max_epochs, tracker)
        model_notes = log_notes(label, predictor, tracker)
        log_model_tables(tracker, per_series, prep.df, predictor)
        if cfg.evaluation.plots:
            log_model_plots(tracker, predictor, prep, fc, history, per_series, cfg)
        holdout = next((d for d in job.datasets if d.context == "holdout"), None)
        logged = log_served(tracker, predictor, job.example, settings, scores, metric, holdout)
        tracker.log_metrics({"fit_seconds": seconds, "epochs": epochs})
        log_windows(tracker, metric, by_window, by_backtest)
        log.info("%s: holdout %s = %.4f", label, metric, scores[metric])
        result = ModelResult(label, family, scores, run_id, logged.uri, epochs, seconds,
                             predictor, verdict.converged, verdict.reason,
                             (*predictor.conformal_notes, *model_notes,
                              *began.own_note(job.warm)), tuple(by_window),
                             backtest, tuple(by_backtest), began.start)
        tracker.log_metrics({f"select_{metric}": result.selection_score(metric)})
        return result


def _with_predictor(result: ModelResult, tracker: Tracker) -> ModelResult:
    """``result`` with its fitted model, loaded from its URI when it was trained elsewhere."""
    if result.predictor is None:
        result.predictor = tracker.registry.load_logged(result.model_uri).predictor
    return result


def train_models(df: pd.DataFrame, cfg: PipelineConfig, tracker: Tracker, *, data_sha256: str,
                 context: dict[str, Any] | None = None, mapper: Mapper | None = None,
                 source: str = "") -> TrainOutcome:
    """Train, score and log every model inside the active parent run of ``tracker``: one
    after the other here, or through ``mapper`` (each model in a worker process). The
    parent and every model run link the training and holdout datasets (``source``: where
    the data came from, as the run's ``deepcast.data_path`` tag says)."""
    parent_id = tracker.active_run_id()
    tracker.set_tags({tag.DATA_START: str(df[DS].min()), tag.DATA_END: str(df[DS].max())})
    datasets = run_datasets(df, cfg.name, source, data_sha256, cfg.evaluation.test_size)
    tracker.log_inputs(datasets)
    prep = prepare(df, cfg)
    metric = cfg.evaluation.metric

    ref_pred, _, _ = fit_model(cfg.reference_model, prep, training_settings(cfg))
    reference, _ = evaluate(ref_pred, prep, cfg.evaluation.conformal)

    example = serving_example(prep, bottom=cfg.hierarchy and cfg.hierarchy.spec().bottom_name)
    windows = selection_windows(prep, cfg)
    warm = warm_plan(cfg, tracker)
    if warm is not None:
        tracker.set_tags(warm.tags())
        log.info("%s", warm.note)
    jobs = [ModelJob(entry, prep, cfg, reference, example, parent_id, tracker.uri,
                     tracker.experiment, datasets, windows, warm) for entry in cfg.models]
    budget = Budget(cfg.auto.time_limit)
    if mapper is None:
        results = [train_model(job, tracker) for job in jobs
                   if budget.allows(job.label, costly(job.entry.type))]
    else:
        if budget.limit is not None:
            log.warning("auto.time_limit is not applied to models trained in parallel "
                        "(execution: dask): all %d are trained", len(jobs))
        results = mapper(train_model, jobs)
        members = {m for spec in cfg.ensemble for m in spec.members}
        results = [_with_predictor(r, tracker) if r.name in members else r for r in results]
    _train_ensembles(results, replace(jobs[0], entry=None), budget, tracker)

    outcome = TrainOutcome(parent_id, metric, results, reference, data_sha256, len(df),
                           prep.panel.n_series, ref_pred, cfg.lengths.holdout_origins,
                           cfg.evaluation.test_size, tuple(budget.skipped), budget.limit,
                           windows, warm, cfg.evaluation.prefer_ensemble)
    if budget.skipped:
        log.warning("auto.time_limit (%g s) spent: not trained: %s", budget.limit,
                    ", ".join(budget.skipped))
        tracker.set_tags({tag.SKIPPED: ", ".join(budget.skipped)})
    _with_predictor(outcome.best, tracker)  # the promotion gate scores it
    log_leaderboard(tracker, outcome)
    if cfg.evaluation.plots:
        tracker.log_files({"skill_vs_seasonal_naive.png": plots.skill_figure(
            outcome.table(), metric, outcome.best.name)}, "plots")
    return outcome


def _train_ensembles(results: list[ModelResult], shared: ModelJob, budget: Budget,
                     tracker: Tracker) -> None:
    """Fit, score and log every ``ensemble:`` entry from ``results`` (appended to them);
    ``shared``: the run's data, config and parent run. An ensemble's backtest is its
    members' (bagging has none)."""
    prep, cfg = shared.prep, shared.cfg
    memo: MemberBacktests = {}  # one backtest per set of members
    for spec in cfg.ensemble:
        spec = budget.ensemble(spec, {r.name for r in results})
        if spec is None:
            continue
        by_name = {r.name: r.backtest for r in results}
        backtest = None if spec.method == "bagging" else \
            ensemble_backtest(spec.method, [by_name.get(m) for m in spec.members])
        results.append(_tracked_fit(
            spec.name, f"ensemble-{spec.method}", {"ensemble": spec.model_dump(mode="json")},
            lambda on_epoch, spec=spec: fit_ensemble(spec, results, prep, cfg, memo), shared,
            tracker, lambda backtest=backtest: backtest))


def _spread(values: tuple[float, ...]) -> float | None:
    """Standard deviation over the holdout's origins (None with fewer than two)."""
    finite = [v for v in values if np.isfinite(v)]
    return round(float(np.std(finite, ddof=1)), 4) if len(finite) > 1 else None
