"""What every model run of a ``train`` logs besides its fit, whether the panel was in one
process or in shards: its settings, the convergence verdict, the notes its scores and bands
rest on, the served model with its holdout metrics, and the per-window scores."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from deepcast.forecasting.convergence import convergence
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.tracking import tags as tag

if TYPE_CHECKING:  # annotations only: mlflow is imported where a run needs it
    import pandas as pd

    from deepcast.pipelines.tracking import Tracker
    from deepcast.pipelines.tracking.datasets import RunDataset

log = logging.getLogger("deepcast")


def model_settings(cfg: PipelineConfig, params: dict[str, Any]) -> dict[str, Any]:
    """A model run's parameters (``params``: its entry) with what every model shares: on
    the run and on its logged model."""
    return {**params, "features": cfg.features.model_dump(mode="json"),
            "training": cfg.training.model_dump(mode="json"),
            "season_length": cfg.data.season_length, "test_size": cfg.evaluation.test_size}


def log_served(tracker: Tracker, predictor: Predictor, example: pd.DataFrame,
               settings: dict[str, Any], scores: dict[str, float], metric: str,
               holdout: RunDataset | None = None) -> Any:
    """Log the served model (its URI tagged: what a later warm start loads) and its
    holdout scores on the run and on the logged model (the UI's Models tab and the
    registered version show them; ``holdout``: the dataset they were measured on)."""
    logged = tracker.log_predictor(predictor, example, settings)
    tracker.set_tags({tag.MODEL_URI: logged.uri})
    tracker.log_model_metrics(logged.model_id, {
        f"holdout_{k}": v for k, v in scores.items() if not k.startswith("skill_")}
        | {f"skill_{metric}": scores[f"skill_{metric}"]}, holdout)
    return logged


def log_notes(label: str, predictor: Predictor, tracker: Tracker) -> list[str]:
    """Tag (and warn about) what a model's bands and forecasts rest on; the model's own
    notes (a local model's fallbacks: warned already)."""
    for note in predictor.conformal_notes:
        log.warning("%s: %s", label, note)
    model_notes = predictor.forecaster.notes()
    if predictor.conformal_notes:
        tracker.set_tags({tag.CONFORMAL_NOTES: "; ".join(predictor.conformal_notes)})
    if model_notes:
        tracker.set_tags({tag.MODEL_NOTES: "; ".join(model_notes)})
    return model_notes


def log_convergence(label: str, history: dict[str, list[float]], max_epochs: int,
                    tracker: Tracker) -> Any:
    """Whether the fit converged, tagged on its run and warned about when it did not."""
    verdict = convergence(history, max_epochs)
    if verdict.converged is not None:
        tracker.set_tags({tag.CONVERGED: str(verdict.converged).lower(),
                          tag.CONVERGENCE_REASON: verdict.reason})
        if not verdict.converged:
            log.warning("%s: %s", label, verdict.reason)
    return verdict


def log_leaderboard(tracker: Tracker, outcome: Any) -> None:
    """The parent run's view of a ``train`` (``outcome``: its TrainOutcome): the best
    model's and seasonal naive's scores, the best model's name, every model's row."""
    metric, best = outcome.metric, outcome.best
    tracker.log_metrics({f"best_holdout_{metric}": best.metrics[metric],
                         f"best_select_{metric}": best.selection_score(metric),
                         f"seasonal_naive_holdout_{metric}": outcome.reference[metric]})
    tracker.set_tags({tag.BEST_MODEL: best.name})
    tracker.log_dict(outcome.table().to_dict(orient="records"), "leaderboard.json")


def log_windows(tracker: Tracker, metric: str, by_origin: list[float],
                by_backtest: list[float]) -> None:
    """Per-window scores as steps of one metric each: the spread in the UI's chart."""
    for i, value in enumerate(by_origin):
        tracker.log_metrics({f"holdout_{metric}_by_origin": value}, step=i)
    for i, value in enumerate(by_backtest):
        tracker.log_metrics({f"backtest_{metric}_by_window": value}, step=i)
