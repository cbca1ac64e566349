"""A model's holdout scores from every shard's: the panel's means over series, the
weighted quantile loss from summed parts, the selection metric per origin, and conformal
bands calibrated on all shards' residual rows (what ``train`` computes on one panel)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepcast.pipelines.shard_parts import PartScore


@dataclass(frozen=True)
class HoldoutScores:
    """A model's holdout scores from every shard: the means over series, the per-series
    table, and the selection metric at each forecast origin (its spread)."""

    metrics: dict[str, float]
    per_series: pd.DataFrame
    by_origin: list[float] = field(default_factory=list)


def calibrate(predictor: Any, scores: list[PartScore], levels: Sequence[float]) -> None:
    """Conformal bands from the shards' calibration rows (``modelling.evaluate``'s)."""
    from deepcast.forecasting import conformal

    rows = np.concatenate([s.residuals[0] for s in scores])
    scale = np.concatenate([s.residuals[1] for s in scores])
    calibration = conformal.calibrate(rows, scale, levels).filled()
    predictor.conformal = calibration.table or None
    predictor.conformal_notes = calibration.notes(" (calibrated on the holdout)")


def merged_scores(scores: list[PartScore]) -> HoldoutScores:
    """The holdout metrics of the panel from its shards': each the mean over series (as
    ``forecasting.evaluate.score_test``), the weighted quantile loss from summed parts,
    the selection metric per origin as ``selection.window_scores`` averages it."""
    from deepcast.features.schema import ID
    from deepcast.forecasting.metrics import series_mean, wql_of

    if not scores:
        return HoldoutScores({}, pd.DataFrame())
    per_series = pd.concat([s.per_series for s in scores], ignore_index=True)
    metrics = {c: series_mean(per_series[c].to_numpy(np.float64))
               for c in per_series.columns if c != ID}
    sums = [s.wql_parts for s in scores if s.wql_parts is not None]
    if sums:
        metrics["wql"] = wql_of(np.sum([s[0] for s in sums], axis=0), sum(s[1] for s in sums))
    by_origin = np.concatenate([s.by_origin for s in scores])
    return HoldoutScores(metrics, per_series,
                         [series_mean(by_origin[:, j]) for j in range(by_origin.shape[1])])
