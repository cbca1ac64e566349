"""``train`` from shards: the tracked, gated run of ``deepcast train`` when no process may
hold the panel (``execution.runner: dask``, a Parquet dataset or a ``data.sql`` query, and
``training.windows_per_epoch``: :func:`trains_in_shards`).

The run is ``train``'s, in the same MLflow shape: a parent run with the data's counts, the
merged validation report and the drift reference profile; a nested run per model of the
YAML with its parameters, loss curve, holdout scores (per series too), convergence verdict
and its logged model; the best model registered as ``challenger``, and ``champion`` if it
passes the promotion gate. The shards are read, validated and prepared once by the workers
(:mod:`.train_shards`) and stay there for the whole run: global models train on a window
stream drawn from them, models that do not train (baselines, statistical models, fitted per
series at forecast time) are only built, and every model and seasonal naive are scored on
each shard's holdout where the shard lives. The gate scores the candidate, seasonal naive
and the current champion on ``train``'s rolling cut-offs through the holdout, shard by
shard (on the holdout when it is shorter than the horizon).

Ensembles that need no backtest of their members (mean, median, bagging) are built and
scored like the models. What it does not do, each said in the run's notes: weighted,
stacking and greedy ensembles, the selection backtest (the holdout chooses and calibrates
the conformal bands), plots, warm starts and ``auto.time_limit``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepcast.forecasting.metrics import skill
from deepcast.forecasting.models import families
from deepcast.pipelines import progress
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.gate import gate_mean
from deepcast.pipelines.ingest import file_sha256
from deepcast.pipelines.model_run import (
    log_convergence,
    log_leaderboard,
    log_notes,
    log_served,
    log_windows,
    model_settings,
)
from deepcast.pipelines.modelling import ModelResult
from deepcast.pipelines.results import TrainResult
from deepcast.pipelines.runs import store
from deepcast.pipelines.runs.base import RunInputs, Steps, run_tags
from deepcast.pipelines.runs.train_shards import (
    SHARDABLE,
    PreparedShards,
    check_shard_training,
    prepare_shards,
    unsupported,
)
from deepcast.pipelines.shard_parts import Part, bundle_bytes, unpacked
from deepcast.pipelines.tracking import tags as tag

log = logging.getLogger("deepcast")


def trains_in_shards(cfg: PipelineConfig, inputs: RunInputs) -> bool:
    """Whether ``train`` runs shard by shard: on Dask, from a Parquet source or a query,
    with a sample size per epoch, and no hierarchy (reconciled across all its series at
    once); the in-memory path otherwise."""
    from deepcast.pipelines.runs.validate_shards import sharded

    return sharded(cfg, inputs) and cfg.training.windows_per_epoch is not None \
        and cfg.hierarchy is None


def train_from_shards(cfg: PipelineConfig, inputs: RunInputs, steps: Steps,
                      first: Callable[[PreparedShards], None] | None = None) -> TrainResult:
    """Validate and prepare every shard in the workers, then fit, score, track and promote
    every model of ``cfg`` (see the module's docstring); ValidationFailed when a shard's
    data is bad (nothing tracked, the registry untouched). ``first(shards)``: a check of
    the prepared shards before anything is tracked (``retrain``'s drift check)."""
    check_shard_training(cfg, inputs)
    with steps.pool(cfg) as pool:
        shards = prepare_shards(cfg, inputs, pool, steps)
        try:
            if first is not None:
                first(shards)
            return _tracked(shards, inputs, steps)
        finally:
            shards.release()


def _tracked(shards: PreparedShards, inputs: RunInputs, steps: Steps) -> TrainResult:
    """The parent run, a nested run per model, the profile and the promotion."""
    from deepcast.pipelines.train import TrainOutcome

    cfg, report, metric = shards.cfg, shards.report, shards.cfg.evaluation.metric
    tracker = store.open_tracker(cfg)
    source = inputs.source(cfg)
    tags = {**run_tags(cfg, "train", inputs, shards.sha256),
            tag.PIPELINE_FILE: str(Path(inputs.pipeline_file)) if inputs.pipeline_file else "",
            tag.FILE_SHA256: file_sha256(source) if source and Path(source).is_file() else "",
            tag.SHARDS: str(shards.n_shards)}
    with store.aliases_kept_on_failure(tracker, "train") as decided, \
            store.parent_run(tracker, cfg, "train", tags) as parent_id:
        store.log_train_report(tracker, cfg, report, shards.n_rows, shards.n_series,
                               shards.raw_rows)
        ref_pred, _, _ = shards.fit(cfg.reference_model)
        reference = steps.run("score-reference", shards.score, ref_pred).metrics
        example = steps.io("serving-example", shards.example)
        run = _Run(shards, reference, example, parent_id, tracker, steps)
        results = [_model_run(
            run, e.label, e.type, {"model": e.model_dump(mode="json")},
            lambda on_epoch, e=e: steps.run(f"fit-{e.label}", shards.fit, e, on_epoch),
            cfg.training.max_epochs if families()[e.type].trainable else 1)
            for e in cfg.models]
        fitted = {r.name: r.predictor for r in results}
        results += [_model_run(
            run, s.name, f"ensemble-{s.method}", {"ensemble": s.model_dump(mode="json")},
            lambda on_epoch, s=s: shards.ensemble(s, fitted, steps), 1)
            for s in cfg.ensemble if s.method in SHARDABLE]
        outcome = TrainOutcome(parent_id, metric, results, reference, shards.sha256,
                               shards.n_rows, shards.n_series, ref_pred,
                               cfg.lengths.holdout_origins, cfg.evaluation.test_size,
                               prefer_ensemble=cfg.evaluation.prefer_ensemble,
                               backtestable=False)
        notes = [*report.warnings, *outcome.notes(), *_left_out(cfg, shards)]
        for note in notes[len(report.warnings):]:
            log.info("%s", note)
        log_leaderboard(tracker, outcome)
        store.describe_run(tracker, outcome.table(), metric, notes)
        steps.io("save-reference-profile", store.log_profile, tracker, outcome,
                 shards.profile)
        decision = steps.run("promote", _promote, outcome, shards, tracker)
        decided.append(decision)  # from here on, a failure restores the aliases
    return TrainResult(
        pipeline=cfg.name, parent_run_id=parent_id, metric=metric,
        table=outcome.table().to_dict(orient="records"), reference=reference,
        best=outcome.best.name, decision=decision, n_rows=shards.n_rows,
        n_series=shards.n_series, dropped_series=report.dropped_series,
        quarantined=report.quarantined, quarantine_path=report.quarantine_path,
        validation_report=report.report_path, tracking_uri=store.store_uri(tracker),
        notes=notes)


@dataclass(frozen=True)
class _Run:
    """What every model run of the job shares: the shards, seasonal naive's scores, the
    serving example, the parent run, the tracker and the steps."""

    shards: PreparedShards
    reference: dict[str, float]
    example: Any
    parent_id: str
    tracker: Any
    steps: Steps


def _model_run(run: _Run, label: str, family: str, params: dict[str, Any],
               build: Callable[[Callable], tuple[Any, dict[str, list[float]], float]],
               epochs_max: int) -> ModelResult:
    """One nested run: ``build(on_epoch)`` (a fit on the shards' window stream, or an
    ensemble of fitted models), the holdout scored on every shard, all of it logged."""
    shards, tracker, steps, reference = run.shards, run.tracker, run.steps, run.reference
    example, parent_id = run.example, run.parent_id
    cfg, metric = shards.cfg, shards.cfg.evaluation.metric
    tags = {tag.MODEL_TYPE: family, tag.PIPELINE: cfg.name}
    with tracker.run(label, nested=True, tags=tags, parent_run_id=parent_id) as run_id:
        settings = model_settings(cfg, params)
        tracker.log_params(settings)
        log.info("training %s (%s) from %d shards", label, family, shards.n_shards)
        with progress.task(f"train {label}", epochs_max) as advance:

            def on_epoch(epoch: int, logs: dict[str, float]) -> None:
                tracker.log_metrics(logs, step=epoch)
                advance(1)

            predictor, history, seconds = build(on_epoch)
        holdout = steps.run(f"score-{label}", shards.score, predictor,
                            cfg.evaluation.conformal)
        scores = holdout.metrics
        scores[f"skill_{metric}"] = skill(scores[metric], reference[metric])
        epochs = len(history.get("loss", []))
        verdict = log_convergence(label, history, cfg.training.max_epochs, tracker)
        model_notes = log_notes(label, predictor, tracker)
        tracker.log_frame(holdout.per_series, "holdout/per_series_metrics.csv")
        logged = log_served(tracker, predictor, example, settings, scores, metric)
        tracker.log_metrics({"fit_seconds": seconds, "epochs": epochs})
        log_windows(tracker, metric, holdout.by_origin, [])
        log.info("%s: holdout %s = %.4f", label, metric, scores[metric])
        result = ModelResult(label, family, scores, run_id, logged.uri, epochs, seconds,
                             predictor, verdict.converged, verdict.reason,
                             (*predictor.conformal_notes, *model_notes),
                             tuple(holdout.by_origin))
        tracker.log_metrics({f"select_{metric}": result.selection_score(metric)})
        return result


def _promote(outcome: Any, shards: PreparedShards, tracker: Any) -> Any:
    """The gate of ``train``: the candidate, seasonal naive and the champion on the same
    rolling cut-offs through the holdout (each shard's series scored in its worker, the
    mean over all of them), or on the holdout when it is shorter than the horizon."""
    from deepcast.pipelines.gate import GateScore, champion_scored, gate_cutoffs
    from deepcast.pipelines.promote import promote_scored

    cfg, metric = shards.cfg, shards.cfg.evaluation.metric
    cuts = gate_cutoffs(np.zeros(1, dtype=np.int64), cfg)
    if cuts is None:  # the holdout: the train-time scores
        def score(predictor: Any) -> float:
            return shards.score(predictor).metrics[metric]

        gate, windows = f"holdout ({shards.n_shards} shards)", 0
        scores = (outcome.best.metrics[metric], outcome.reference[metric])
    else:
        def score(predictor: Any) -> float:
            return gate_mean([v for v in shards.pool.run(
                gate_part, shards.handles, bundle_bytes(predictor), cfg) if v is not None])

        windows = int(cuts.shape[1])
        gate = f"{windows} cut-off(s) through the holdout, step {cfg.lengths.step} " \
            f"({shards.n_shards} shards)"
        scores = (score(outcome.best.predictor), score(outcome.reference_predictor))
    return promote_scored(
        outcome, cfg, tracker, (GateScore(scores[0]), GateScore(scores[1])), gate,
        lambda: champion_scored(tracker.registry, cfg,
                                lambda model: GateScore(score(model.predictor)),
                                f"re-scored on the same {gate}"), windows)


def gate_part(part: Part, bundle: bytes, cfg: PipelineConfig) -> np.ndarray | None:
    """The gate's metric of the model (``bundle``) per series and cut-off of the part (in
    the worker holding it), as ``gate.GateWindows`` scores a whole panel."""
    from deepcast.pipelines.gate import GateWindows

    if part.prep is None:
        return None
    if part.windows is None:  # once per run: the candidate, seasonal naive, the champion
        part.windows = GateWindows.build(part.prep.df, cfg)
    return part.windows.table(unpacked(bundle))[cfg.evaluation.metric].to_numpy(np.float64)


def _left_out(cfg: PipelineConfig, shards: PreparedShards) -> list[str]:
    """What this run did not do that ``train`` in one process does, one note each."""
    notes = [f"trained from {shards.n_shards} shards ({shards.n_series} series, "
             f"{shards.stream.n_train} training windows, {cfg.training.windows_per_epoch} "
             "sampled per epoch)", *unsupported(cfg)]
    e = cfg.evaluation
    if e.selection == "backtest":
        notes.append("evaluation.selection: backtest is not run from shards: the holdout "
                     "chooses the model, the gate scores it, and the conformal bands are "
                     "calibrated on its residuals")
    if e.plots:
        notes.append("evaluation.plots: no plots from shards")
    if cfg.training.warm_start:
        notes.append("training.warm_start is not applied from shards: every fit started "
                     "cold")
    if cfg.auto.time_limit is not None:
        notes.append(f"auto.time_limit ({cfg.auto.time_limit:g} s) is not applied from "
                     "shards: every model was trained")
    return notes
