"""Promote stage: register the run's best model and move aliases through a gate.

The best model by ``evaluation.metric`` becomes a new registry version with alias
``challenger``. It also becomes ``champion`` only if, on the same rolling cut-offs through
today's holdout (``evaluation.backtest.step`` apart; out of sample for the candidate), it
beats the current champion re-scored there by ``promotion.margin`` and beats seasonal
naive (the first run's best needs only the latter); with a hierarchy, at
``promotion.level`` (:mod:`deepcast.pipelines.gate`). The decision, the three scores and,
with a hierarchy, the three per level are recorded on the run and on the version; every
champion change is kept as a history of version tags, and :func:`rollback` restores the
previous champion.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pandas as pd

from deepcast.features.errors import ConfigError
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.gate import (
    ALL,
    ChampionScore,
    GateScore,
    GateWindows,
    decide,
    gate_level,
    holdout_score,
    rescore_champion,
)
from deepcast.pipelines.tracking import CHALLENGER, CHAMPION, Registry, Tracker
from deepcast.pipelines.tracking import tags as tag
from deepcast.pipelines.train import TrainOutcome

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
    seasonal_naive_score: float | None = None
    gate: str = ""
    windows: int = 0
    notes: list[str] = field(default_factory=list)
    #: the version ``challenger`` named before this decision (None: no challenger); what a
    #: failed run puts back
    challenger_version: str | None = None
    #: the level whose scores decided (``all``: every series; see promotion.level)
    level: str = ALL
    #: with a hierarchy: per level (``all`` first), the candidate's, champion's and
    #: seasonal naive's scores on the gate's windows (None: not scored)
    by_level: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def promote(outcome: TrainOutcome, df: pd.DataFrame, cfg: PipelineConfig, tracker: Tracker
            ) -> PromotionDecision:
    """Register the best model, set ``challenger``, and ``champion`` if the gate says so."""
    best = outcome.best
    windows = GateWindows.build(df, cfg)
    if windows is not None and best.predictor is not None \
            and outcome.reference_predictor is not None:
        score = windows.score(best.predictor)
        reference = windows.score(outcome.reference_predictor)
        gate = f"{windows.cuts.shape[1]} cut-off(s) through the holdout, step " \
               f"{cfg.lengths.step}"
    else:
        windows, gate = None, "holdout"
        score, reference = _holdout_scores(outcome, df, cfg)
    return promote_scored(outcome, cfg, tracker, (score, reference), gate,
                          lambda: rescore_champion(tracker.registry, df, cfg, windows),
                          0 if windows is None else int(windows.cuts.shape[1]))


def promote_scored(outcome: TrainOutcome, cfg: PipelineConfig, tracker: Tracker,
                   scores: tuple[GateScore, GateScore], gate: str,
                   rescore: Callable[[], ChampionScore], windows: int = 0
                   ) -> PromotionDecision:
    """Register the best model and move the aliases on the candidate's and seasonal
    naive's gate ``scores`` (on ``gate``: ``windows`` cut-offs, or the holdout) and the
    champion ``rescore()`` re-scores, one decision at a time against the champion of now."""
    with tracker.registry.promotion_lock():
        return _decide_and_register(outcome, cfg, tracker, scores, gate, rescore(), windows)


def _holdout_scores(outcome: TrainOutcome, df: pd.DataFrame, cfg: PipelineConfig
                    ) -> tuple[GateScore, GateScore]:
    """Candidate and seasonal naive on the holdout (the gate without cut-offs): their
    train-time scores, per level too where the predictors are at hand."""
    metric, best = cfg.evaluation.metric, outcome.best
    if cfg.hierarchy is not None and best.predictor is not None \
            and outcome.reference_predictor is not None:
        return (holdout_score(best.predictor.predict, df, cfg),
                holdout_score(outcome.reference_predictor.predict, df, cfg))
    return GateScore(best.metrics[metric]), GateScore(outcome.reference[metric])


def _by_level(cfg: PipelineConfig, candidate: GateScore, champion: GateScore | None,
              reference: GateScore) -> dict[str, dict[str, float | None]]:
    """The three scores per level, ``all`` then total to bottom (empty without a
    hierarchy)."""
    if cfg.hierarchy is None or not candidate.levels:
        return {}
    spec = cfg.hierarchy.spec()
    return {level: {"candidate": candidate.at(level),
                    "champion": None if champion is None else champion.at(level),
                    "seasonal_naive": reference.at(level)}
            for level in (ALL, *(spec.level_name(lv) for lv in spec.levels))}


def _decide_and_register(outcome: TrainOutcome, cfg: PipelineConfig, tracker: Tracker,
                         scores: tuple[GateScore, GateScore], gate: str,
                         champ: ChampionScore, windows: int) -> PromotionDecision:
    """Inside the promotion lock, with the champion re-scored: decide at the gate's
    level, register the candidate, move the aliases (champion only if it is still the one
    the decision saw). A failure after the version is registered puts the aliases back as
    they were."""
    metric, level = cfg.evaluation.metric, gate_level(cfg)
    best, registry = outcome.best, tracker.registry
    candidate, naive = scores
    score, reference = candidate.at(level), naive.at(level)
    champ_score = None if champ.score is None else champ.score.at(level)
    if level != ALL:
        gate = f"{gate}, level {level}"
    promoted, reason = decide(score, champ_score,
                              None if champ.other_horizon else champ.version,
                              cfg.promotion.margin, reference, best.family == "seasonal_naive")
    if champ.other_horizon and promoted:  # seasonal naive's bar only: say whom it replaces
        reason = f"beats seasonal naive and replaces champion v{champ.version} ({champ.note})"
    decision = PromotionDecision(promoted, reason, metric, best.name, score,
                                 champion_version=champ.version, champion_score=champ_score,
                                 seasonal_naive_score=reference, gate=gate,
                                 windows=windows,
                                 notes=[champ.note],
                                 challenger_version=registry.aliases().get(CHALLENGER),
                                 level=level,
                                 by_level=_by_level(cfg, candidate, champ.score, naive))
    tags = {tag.MODEL_NAME: best.name, tag.MODEL_TYPE: best.family,
            tag.holdout_score(metric): score, tag.DATA_SHA256: outcome.data_sha256,
            tag.PARENT_RUN_ID: outcome.parent_run_id}
    decision.candidate_version = registry.register(best.model_uri, best.run_id, tags).version
    try:
        _move_aliases(decision, registry)
        _record(decision, tracker, champ.note)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # keep the run's own error
            revert_promotion(registry, decision, f"promotion failed: {exc}")
        raise
    return decision


def _move_aliases(decision: PromotionDecision, registry: Registry) -> None:
    """Tag the registered candidate with the gate's verdict; point ``challenger`` at it,
    and ``champion`` when promoted and the champion is still the one the gate saw."""
    version, metric = decision.candidate_version, decision.metric
    registry.set_version_tags(version, {
        tag.DECISION: "promoted" if decision.promoted else "kept-champion",
        tag.REASON: decision.reason,
        tag.GATE: decision.gate,
        tag.gate_score(metric): decision.candidate_score,
        tag.CHAMPION_SCORE: "" if decision.champion_score is None else decision.champion_score,
        tag.SEASONAL_NAIVE_SCORE: decision.seasonal_naive_score,
    })
    registry.set_alias(CHALLENGER, version)
    now, seen = registry.aliases().get(CHAMPION), decision.champion_version
    if decision.promoted and now != seen:  # compare-and-set: someone else moved it
        decision.promoted = False
        decision.reason = (f"the champion changed to v{now} while deciding (was v{seen}): "
                           "kept; train again to compare")
        registry.set_version_tags(version, {tag.DECISION: "kept-champion",
                                            tag.REASON: decision.reason})
    if decision.promoted:
        registry.set_version_tags(version, {
            tag.PROMOTED_AT: _now(), tag.REPLACED_VERSION: seen or "",
            tag.PROMOTED_BECAUSE: decision.reason})
        registry.set_alias(CHAMPION, version)


def _record(decision: PromotionDecision, tracker: Tracker, note: str) -> None:
    """The decision as tags of the train run and its ``promotion.json``."""
    promoted, reason = decision.promoted, decision.reason
    tracker.set_tags({
        tag.PROMOTION_DECISION: "promoted" if promoted else "kept-champion",
        tag.PROMOTION_REASON: reason,
        tag.PROMOTION_CANDIDATE_VERSION: decision.candidate_version,
        tag.PROMOTION_CANDIDATE_SCORE: decision.candidate_score,
        tag.PROMOTION_CHAMPION_VERSION: decision.champion_version or "",
        tag.PROMOTION_CHAMPION_SCORE: "" if decision.champion_score is None
        else decision.champion_score,
        tag.PROMOTION_SEASONAL_NAIVE_SCORE: decision.seasonal_naive_score,
        tag.PROMOTION_GATE: decision.gate,
        tag.PROMOTION_CHAMPION_NOTE: note,
        tag.PROMOTION_LEVEL: decision.level,
    })
    per_level = {tag.gate_level_metric(role, decision.metric, level): value
                 for level, row in decision.by_level.items() for role, value in row.items()
                 if value is not None and math.isfinite(value)}
    if per_level:
        tracker.log_metrics(per_level)
    tracker.log_dict(decision.to_dict(), "promotion.json")
    log.info("promotion: %s (%s)", "promoted" if promoted else "kept champion", reason)


def history(registry: Registry) -> list[dict[str, str]]:
    """Every champion change, oldest first: promotions (who replaced whom, why) and
    rollbacks, read from the version tags the gate and :func:`rollback` write."""
    events = []
    for mv in registry.versions():
        t = mv.tags
        if t.get(tag.PROMOTED_AT):
            events.append({"when": t[tag.PROMOTED_AT], "action": "promoted",
                           "version": str(mv.version), "model": t.get(tag.MODEL_NAME, ""),
                           "replaced": t.get(tag.REPLACED_VERSION, ""),
                           "why": t.get(tag.PROMOTED_BECAUSE, "")})
        for key in sorted(k for k in t if k.startswith(tag.RESTORED_AT_PREFIX)):
            events.append({"when": t[key], "action": "restored by rollback",
                           "version": str(mv.version), "model": t.get(tag.MODEL_NAME, ""),
                           "replaced": key.rsplit(".", 1)[-1], "why": "deepcast promote "
                           "--rollback"})
    return sorted(events, key=lambda e: e["when"])


def rollback(registry: Registry) -> dict[str, str]:
    """Give ``champion`` back to the version the current champion replaced; record it.
    The target is verified first: a version that is not deepcast's model is refused
    (ConfigError) before any alias moves."""
    aliases = registry.aliases()
    if CHAMPION not in aliases:
        raise ConfigError(f"registered model {registry.name!r} has no champion to roll "
                          "back", hint="train first (deepcast train)")
    current = aliases[CHAMPION]
    previous = registry.version_tags(current).get(tag.REPLACED_VERSION, "")
    if not previous:
        raise ConfigError(f"champion v{current} did not replace another version: nothing to "
                          "roll back to",
                          hint="`deepcast promote PIPELINE` (no option) prints the history")
    registry.verify(registry.resolve(previous))
    when = _now()
    registry.set_alias(CHAMPION, previous)
    registry.set_version_tags(current, {tag.ROLLED_BACK_AT: when, tag.ROLLED_BACK_TO: previous})
    registry.set_version_tags(previous, {tag.restored_at(current): when})
    log.info("rollback: champion v%s -> v%s", current, previous)
    return {"from_version": current, "to_version": previous, "when": when}


def revert_promotion(registry: Registry, decision: PromotionDecision, why: str) -> None:
    """Undo what this run did to the aliases when a later step of the run failed, so the
    registry's aliases are as before the run: ``challenger`` back to the version it named
    (none: removed), ``champion`` back to the version it replaced (after a first run: no
    champion). Each alias moves only while it still names this run's candidate (another
    run may have moved it since). The candidate stays registered, tagged with ``why``;
    a champion change is recorded on both versions so :func:`history` shows it."""
    current = decision.candidate_version
    if not current:
        return
    aliases, when = registry.aliases(), _now()
    registry.set_version_tags(current, {tag.ROLLBACK_REASON: why})
    _restore(registry, CHALLENGER, current, decision.challenger_version, aliases)
    if decision.promoted and aliases.get(CHAMPION) == current:
        previous = decision.champion_version
        _restore(registry, CHAMPION, current, previous, aliases)
        if previous:
            registry.set_version_tags(previous, {tag.restored_at(current): when})
        registry.set_version_tags(current, {tag.ROLLED_BACK_AT: when,
                                            tag.ROLLED_BACK_TO: previous or ""})
    log.warning("v%s registered but its run failed (%s): aliases restored (champion %s, "
                "challenger %s)", current, why, _named(decision.champion_version),
                _named(decision.challenger_version))


def _restore(registry: Registry, alias: str, current: str, previous: str | None,
             aliases: dict[str, str]) -> None:
    """Point ``alias`` back at ``previous`` (None: remove it) if it names ``current``."""
    if aliases.get(alias) != current:
        return
    if previous:
        registry.set_alias(alias, previous)
    else:
        registry.delete_alias(alias)


def _named(version: str | None) -> str:
    return f"v{version}" if version else "unset"
