"""Promote stage: register the run's best model and move aliases through a gate.

The best model by ``evaluation.metric`` becomes a new registry version with alias
``challenger``. It also becomes ``champion`` only if, on the same rolling cut-offs through
today's holdout (``evaluation.backtest.step`` apart; out of sample for the candidate), it
beats the current champion re-scored there by ``promotion.margin`` and beats seasonal
naive (the first run's best needs only the latter). The decision and the three scores are
recorded on the run and on the version; every champion change is kept as a history of
version tags, and :func:`rollback` restores the previous champion.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from deepcast.features.errors import ConfigError
from deepcast.features.schema import ID
from deepcast.features.windows import panel_from_frame
from deepcast.forecasting.evaluate import holdout_forecast, score_holdout
from deepcast.forecasting.metrics import cutoff_scales
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.modelling import user_frame
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

    def to_dict(self) -> dict:
        return asdict(self)


def gate_cutoffs(lengths: np.ndarray, cfg: PipelineConfig) -> np.ndarray | None:
    """Cut-offs from the end of the training span through the holdout, ``step`` apart (each
    window of ``horizon`` inside the holdout); None when the holdout is shorter than the
    horizon (the gate then uses the holdout scores)."""
    horizon, test_size = cfg.features.horizon, cfg.evaluation.test_size
    if test_size < horizon:
        return None
    step = cfg.lengths.step
    offsets = np.arange(0, test_size - horizon + 1, step)
    return (np.asarray(lengths)[:, None] - test_size) + offsets[None, :]


@dataclass
class GateWindows:
    """The gate's cut-offs on today's data and their scales, computed once for the
    candidate, seasonal naive and the champion."""

    df: pd.DataFrame
    cuts: np.ndarray
    ids: np.ndarray
    scale: np.ndarray
    sq_scale: np.ndarray
    metric: str

    @classmethod
    def build(cls, df: pd.DataFrame, cfg: PipelineConfig) -> GateWindows | None:
        panel = panel_from_frame(df)
        cuts = gate_cutoffs(panel.lengths, cfg)
        if cuts is None:
            return None
        m = cfg.data.season_length
        return cls(df, cuts, panel.ids, cutoff_scales(panel, cuts, m),
                   cutoff_scales(panel, cuts, m, power=2), cfg.evaluation.metric)

    def score(self, predictor: Predictor) -> float:
        """Mean metric of ``predictor`` over the windows."""
        from deepcast.pipelines.backtest import score_windows

        fc = predictor.predict_windows(self.df, self.cuts).sort_values(
            [ID, "window", "h"], kind="stable")
        _, means = score_windows(fc, self.ids, self.scale, self.sq_scale, predictor.horizon)
        return means[self.metric]


def rescore_champion(registry: Registry, df: pd.DataFrame, cfg: PipelineConfig,
                     windows: GateWindows | None = None
                     ) -> tuple[str | None, float | None, str]:
    """(version, score, note) of the current champion re-scored on today's data: on the gate
    ``windows``, or (None, or a champion of another window geometry) on the holdout. A
    champion that is not deepcast's model is refused by the verified load (nothing of it
    runs) and kept, with the reason in the note."""
    if CHAMPION not in registry.aliases():
        return None, None, "no champion yet"
    ref = registry.resolve(CHAMPION)
    try:
        model = registry.load(ref)
        champion = model.predictor
        if windows is not None and champion.horizon == cfg.features.horizon:
            return ref.version, windows.score(champion), \
                f"re-scored on the same {windows.cuts.shape[1]} cut-off(s)"
        d = cfg.data
        fc = holdout_forecast(model.predict, user_frame(df, cfg), cfg.evaluation.test_size,
                              d.id_col, d.time_col, d.target_col)
        scores, _ = score_holdout(fc, df, cfg.evaluation.test_size, cfg.data.season_length)
    except Exception as exc:  # a broken champion must not crash the run: keep it, say why
        log.warning("champion v%s could not be re-scored: %s", ref.version, exc)
        return ref.version, None, f"champion v{ref.version} could not be re-scored ({exc})"
    return ref.version, scores[cfg.evaluation.metric], "re-scored on today's holdout"


# Scores closer than this (relative) are a tie: the champion is re-scored from its saved
# bundle, and the same model scored in memory can differ in the last float bits (a nightly
# replay promoted an identical naive model over itself on a 5e-11 difference).
TIE = 1e-6


def decide(score: float, champion_score: float | None, champion_version: str | None,
           margin: float, reference: float | None = None, is_reference: bool = False
           ) -> tuple[bool, str]:
    """The gate: better than seasonal naive (``reference``; vacuous for seasonal naive
    itself), then strictly better than the champion by ``margin`` (relative; differences
    within :data:`TIE` do not count)."""
    if reference is not None and not is_reference and not score < reference:
        return False, (f"does not beat seasonal naive ({score:.6g} vs {reference:.6g} on the "
                       "same cut-offs)")
    if champion_version is None:
        return True, "first model of this pipeline: becomes champion"
    if champion_score is None:
        return False, "champion could not be re-scored: kept (promote by hand if intended)"
    if not math.isfinite(champion_score):
        return True, "champion's re-scored metric is not finite"
    bar = champion_score * (1.0 - margin)
    if score < bar - TIE * abs(champion_score):
        return True, f"beats champion {champion_score:.6g} (bar {bar:.6g} with margin {margin})"
    return False, f"does not beat champion {champion_score:.6g} (bar {bar:.6g}, margin {margin})"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def promote(outcome: TrainOutcome, df: pd.DataFrame, cfg: PipelineConfig, tracker: Tracker
            ) -> PromotionDecision:
    """Register the best model, set ``challenger``, and ``champion`` if the gate says so."""
    metric = cfg.evaluation.metric
    best = outcome.best
    windows = GateWindows.build(df, cfg)
    if windows is not None and best.predictor is not None \
            and outcome.reference_predictor is not None:
        score = windows.score(best.predictor)
        reference = windows.score(outcome.reference_predictor)
        gate = f"{windows.cuts.shape[1]} cut-off(s) through the holdout, step " \
               f"{cfg.lengths.step}"
    else:
        windows, score, reference = None, best.metrics[metric], outcome.reference[metric]
        gate = "holdout"
    with tracker.registry.promotion_lock():  # one decision at a time, against the champion of now
        return _decide_and_register(outcome, df, cfg, tracker, windows, score, reference,
                                    gate)


def _decide_and_register(outcome: TrainOutcome, df: pd.DataFrame, cfg: PipelineConfig,
                         tracker: Tracker, windows: GateWindows | None, score: float,
                         reference: float, gate: str) -> PromotionDecision:
    """Inside the promotion lock: re-read and re-score the champion, decide, register the
    candidate, move the aliases (champion only if it is still the one the decision saw).
    A failure after the version is registered puts the aliases back as they were."""
    metric = cfg.evaluation.metric
    best, registry = outcome.best, tracker.registry
    champ_version, champ_score, note = rescore_champion(registry, df, cfg, windows)
    promoted, reason = decide(score, champ_score, champ_version, cfg.promotion.margin,
                              reference, best.family == "seasonal_naive")
    decision = PromotionDecision(promoted, reason, metric, best.name, score,
                                 champion_version=champ_version, champion_score=champ_score,
                                 seasonal_naive_score=reference, gate=gate,
                                 windows=0 if windows is None else int(windows.cuts.shape[1]),
                                 notes=[note],
                                 challenger_version=registry.aliases().get(CHALLENGER))
    tags = {tag.MODEL_NAME: best.name, tag.MODEL_TYPE: best.family,
            tag.holdout_score(metric): score, tag.DATA_SHA256: outcome.data_sha256,
            tag.PARENT_RUN_ID: outcome.parent_run_id}
    decision.candidate_version = registry.register(best.model_uri, best.run_id, tags).version
    try:
        _move_aliases(decision, registry)
        _record(decision, tracker, note)
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
    })
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
                          "roll back to", hint="see `deepcast promote PIPELINE --history`")
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
