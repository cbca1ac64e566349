"""The promotion gate's scores: rolling cut-offs through today's holdout, the champion
re-scored on them, and the rule that compares candidate, champion and seasonal naive.

With a hierarchy every score is kept per level too (the mean over each level's series), and
``promotion.level`` says which one decides: ``all`` (every series of every level), ``bottom``
or a level's name. A model better on the total can be worse where the analysts look.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.hierarchy import LEVEL
from deepcast.features.schema import ID, ColumnSpec
from deepcast.features.windows import panel_from_frame
from deepcast.forecasting.evaluate import PredictFn, holdout_forecast, score_holdout
from deepcast.forecasting.metrics import cutoff_scales
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.ingest import column_spec
from deepcast.pipelines.levels import level_scores
from deepcast.pipelines.modelling import user_frame
from deepcast.pipelines.tracking import CHAMPION, Registry

log = logging.getLogger("deepcast")

ALL = "all"  # promotion.level: every series of every level


@dataclass(frozen=True)
class GateScore:
    """One model's gate metric over every series (``all``) and per hierarchy level."""

    all: float
    levels: dict[str, float] = field(default_factory=dict)

    def at(self, level: str) -> float:
        """The score at ``level`` (``all``: every series); NaN when not scored there."""
        return self.all if level == ALL else self.levels.get(level, float("nan"))


def gate_level(cfg: PipelineConfig) -> str:
    """The level whose score decides: ``promotion.level`` with ``bottom`` resolved."""
    level = cfg.promotion.level
    if level == "bottom" and cfg.hierarchy is not None:
        return cfg.hierarchy.spec().bottom_name
    return level


def _by_level(table: pd.DataFrame, df: pd.DataFrame, metric: str) -> dict[str, float]:
    """Mean ``metric`` of ``table`` (rows per series, maybe per window) per level of
    ``df``'s series (:func:`level_scores`; none without a hierarchy)."""
    by_level = level_scores(table.drop(columns="window", errors="ignore"), df)
    if by_level is None or metric not in by_level:
        return {}
    return {str(k): float(v) for k, v in zip(by_level[LEVEL], by_level[metric], strict=True)}


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
        return cls.at(df, cuts, cfg, panel)

    @classmethod
    def at(cls, df: pd.DataFrame, cuts: np.ndarray, cfg: PipelineConfig,
           panel: Any = None) -> GateWindows:
        """The windows at ``cuts`` (history lengths, per series of ``df``'s ``panel``)
        and their scales: a backtest's cut-offs too."""
        panel = panel_from_frame(df) if panel is None else panel
        m = cfg.data.season_length
        return cls(df, cuts, panel.ids, cutoff_scales(panel, cuts, m),
                   cutoff_scales(panel, cuts, m, power=2), cfg.evaluation.metric)

    def score(self, predictor: Predictor) -> GateScore:
        """The metric of ``predictor`` over the windows: the mean, and per level."""
        table = self.table(predictor)
        return GateScore(_mean(table[self.metric].to_numpy(np.float64)),
                         _by_level(table, self.df, self.metric))

    def forecast(self, predictor: Predictor) -> pd.DataFrame:
        """``predictor``'s forecast of every window, sorted by series, window and step."""
        return predictor.predict_windows(self.df, self.cuts).sort_values(
            [ID, "window", "h"], kind="stable").reset_index(drop=True)

    def table(self, predictor: Predictor) -> pd.DataFrame:
        """Every metric of ``predictor`` per series and window (``score_windows``'s)."""
        from deepcast.pipelines.backtest import score_windows

        return score_windows(self.forecast(predictor), self.ids, self.scale, self.sq_scale,
                             predictor.horizon)[0]


def _mean(values: np.ndarray) -> float:
    """``score_windows``' mean: over the finite values (NaN when there is none)."""
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def gate_mean(values: list[np.ndarray]) -> float:
    """The gate's metric from the shards' per series x window values."""
    return _mean(np.concatenate(values)) if values else float("nan")


def holdout_score(predict: PredictFn, df: pd.DataFrame, cfg: PipelineConfig,
                  columns: ColumnSpec | None = None) -> GateScore:
    """The metric of a forecast function on today's holdout: the mean, and per level.
    ``columns``: the names the model takes its history under (a registered model's own,
    which may predate a rename in the YAML; default the YAML's)."""
    d = cfg.data
    n = columns or column_spec(d)
    fc = holdout_forecast(predict, user_frame(df, cfg, n), cfg.evaluation.test_size,
                          n.id_col, n.time_col, n.target_col)
    scores, per_series = score_holdout(fc, df, cfg.evaluation.test_size, d.season_length)
    metric = cfg.evaluation.metric
    return GateScore(scores[metric], _by_level(per_series, df, metric))


@dataclass(frozen=True)
class ChampionScore:
    """The current champion re-scored on today's data (version None: no champion)."""

    version: str | None
    score: GateScore | None
    note: str
    #: the champion forecasts another horizon than the pipeline's: its scores measure
    #: another task, and it cannot serve this one (the gate compares with seasonal naive)
    other_horizon: bool = False


def rescore_champion(registry: Registry, df: pd.DataFrame, cfg: PipelineConfig,
                     windows: GateWindows | None = None) -> ChampionScore:
    """The current champion re-scored on today's data: on the gate ``windows``, or (None)
    on the holdout (:func:`champion_scored`)."""
    if windows is not None:
        return champion_scored(registry, cfg, lambda model: windows.score(model.predictor),
                               f"re-scored on the same {windows.cuts.shape[1]} cut-off(s)")
    return champion_scored(
        registry, cfg, lambda model: holdout_score(model.predict, df, cfg,
                                                   model.predictor.columns),
        "re-scored on today's holdout")


def champion_scored(registry: Registry, cfg: PipelineConfig,
                    score: Callable[[Any], GateScore], how: str) -> ChampionScore:
    """The current champion re-scored by ``score`` (its loaded model -> its score; ``how``
    says where); a champion of another horizon is not scored (``other_horizon``). A
    champion that is not deepcast's model is refused by the verified load (nothing of it
    runs) and kept, with the reason in the note."""
    if CHAMPION not in registry.aliases():
        return ChampionScore(None, None, "no champion yet")
    ref = registry.resolve(CHAMPION)
    try:
        model = registry.load(ref)
        champion = model.predictor
        if champion.horizon != cfg.features.horizon:
            return ChampionScore(ref.version, None, (
                f"champion v{ref.version} forecasts {champion.horizon} steps and this "
                f"pipeline {cfg.features.horizon}: their scores are not comparable (a "
                "candidate that beats seasonal naive replaces it; one that does not leaves "
                "it champion, forecasting its own horizon)"), other_horizon=True)
        scored = score(model)
    except Exception as exc:  # a broken champion must not crash the run: keep it, say why
        log.warning("champion v%s could not be re-scored: %s", ref.version, exc)
        return ChampionScore(ref.version, None,
                             f"champion v{ref.version} could not be re-scored ({exc})")
    return ChampionScore(ref.version, scored, how)


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
