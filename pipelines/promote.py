"""Promote stage: register the run's best model and move aliases through a gate.

The best model by ``evaluation.metric`` becomes a new registry version with alias
``challenger``. It also becomes ``champion`` only if it beats the current champion
*re-scored on today's holdout* by ``promotion.margin`` (the first run's best is champion
at once). The decision and both scores are recorded on the run and on the version.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import pandas as pd

from forecasting.evaluate import holdout_forecast, score_holdout
from pipelines.config import PipelineConfig
from pipelines.tracking import CHALLENGER, CHAMPION, Tracker
from pipelines.train import TrainOutcome, user_frame

log = logging.getLogger("deepcast")


@dataclass
class PromotionDecision:
    """What the gate decided, and why."""

    promoted: bool
    reason: str
    metric: str
    candidate: str
    candidate_score: float
    candidate_version: str = ""
    champion_version: str | None = None
    champion_score: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def rescore_champion(tracker: Tracker, df: pd.DataFrame, cfg: PipelineConfig
                     ) -> tuple[str | None, float | None, str]:
    """(version, score on today's holdout, note) of the current champion, if any."""
    if CHAMPION not in tracker.aliases():
        return None, None, "no champion yet"
    ref = tracker.resolve(CHAMPION)
    try:
        model = tracker.load_pyfunc(ref)
        d = cfg.data
        fc = holdout_forecast(model.predict, user_frame(df, cfg), cfg.evaluation.test_size,
                              d.id_col, d.time_col, d.target_col)
        scores, _ = score_holdout(fc, df, cfg.evaluation.test_size, cfg.data.season_length)
    except Exception as exc:  # a broken champion must not crash the run: keep it, say why
        log.warning("champion v%s could not be re-scored: %s", ref.version, exc)
        return ref.version, None, f"champion v{ref.version} could not be re-scored ({exc})"
    return ref.version, scores[cfg.evaluation.metric], "re-scored on today's holdout"


def decide(score: float, champion_score: float | None, champion_version: str | None,
           margin: float) -> tuple[bool, str]:
    """The gate: strictly better than the champion by ``margin`` (relative)."""
    if champion_version is None:
        return True, "first model of this pipeline: becomes champion"
    if champion_score is None:
        return False, "champion could not be re-scored: kept (promote by hand if intended)"
    if not math.isfinite(champion_score):
        return True, "champion's re-scored metric is not finite"
    bar = champion_score * (1.0 - margin)
    if score < bar:
        return True, f"beats champion {champion_score:.6g} (bar {bar:.6g} with margin {margin})"
    return False, f"does not beat champion {champion_score:.6g} (bar {bar:.6g}, margin {margin})"


def promote(outcome: TrainOutcome, df: pd.DataFrame, cfg: PipelineConfig, tracker: Tracker
            ) -> PromotionDecision:
    """Register the best model, set ``challenger``, and ``champion`` if the gate says so."""
    metric = cfg.evaluation.metric
    best = outcome.best
    score = best.metrics[metric]
    champ_version, champ_score, note = rescore_champion(tracker, df, cfg)
    promoted, reason = decide(score, champ_score, champ_version, cfg.promotion.margin)
    decision = PromotionDecision(promoted, reason, metric, best.name, score,
                                 champion_version=champ_version, champion_score=champ_score)
    tags = {"deepcast.model_name": best.name, "deepcast.model_type": best.family,
            f"deepcast.holdout_{metric}": score, "deepcast.data_sha256": outcome.data_sha256,
            "deepcast.parent_run_id": outcome.parent_run_id}
    version = tracker.register(best.model_uri, best.run_id, tags)
    decision.candidate_version = version.version
    tracker.set_version_tags(version.version, {
        "deepcast.decision": "promoted" if promoted else "kept-champion",
        "deepcast.reason": reason,
        "deepcast.champion_score": "" if champ_score is None else champ_score,
    })
    tracker.set_alias(CHALLENGER, version.version)
    if promoted:
        tracker.set_alias(CHAMPION, version.version)
    tracker.set_tags({
        "deepcast.promotion.decision": "promoted" if promoted else "kept-champion",
        "deepcast.promotion.reason": reason,
        "deepcast.promotion.candidate_version": version.version,
        "deepcast.promotion.candidate_score": score,
        "deepcast.promotion.champion_version": champ_version or "",
        "deepcast.promotion.champion_score": "" if champ_score is None else champ_score,
        "deepcast.promotion.champion_note": note,
    })
    tracker.log_dict(decision.to_dict(), "promotion.json")
    log.info("promotion: %s (%s)", "promoted" if promoted else "kept champion", reason)
    return decision
