"""Tables a model run carries as artifacts: its holdout metrics per series and per level
of a hierarchy, and the inputs TFT weighs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from deepcast.features.covariates import CovariateSpec
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines.levels import level_scores

if TYPE_CHECKING:  # annotations only: mlflow is imported where a run needs it
    from deepcast.pipelines.tracking import Tracker


def log_model_tables(tracker: Tracker, per_series: pd.DataFrame, df: pd.DataFrame,
                     predictor: Predictor) -> None:
    """A model's holdout metrics per series (and per level of a hierarchy: ``df`` is the
    run's frame) and, for TFT, the inputs it weighs, as CSV artifacts of its run."""
    tracker.log_frame(per_series, "holdout/per_series_metrics.csv")
    by_level = level_scores(per_series, df)
    if by_level is not None:
        tracker.log_frame(by_level, "holdout/per_level_metrics.csv")
    importances = variable_importances(predictor)
    if importances is not None:
        tracker.log_frame(importances, "importances/variable_importances.csv")


def variable_importances(predictor: Predictor) -> pd.DataFrame | None:
    """A model's variable importances (TFT's selection weights, measured on its training
    windows) as ``network, variable, importance`` rows; None for families without them."""
    weights = getattr(predictor.forecaster, "variable_importances", None)
    if not weights:
        return None
    from deepcast.forecasting.models.tft import importance_labels

    s = predictor.encoder.spec if predictor.encoder is not None else CovariateSpec()
    labels = importance_labels(s.past, s.future_names, bool(s.static_numeric),
                               bool(s.static_categorical), bool(s.id_embedding))
    rows = [(net, name, float(w)) for net, values in weights.items()
            for name, w in zip(labels[net], values, strict=True)]
    return pd.DataFrame(rows, columns=["network", "variable", "importance"])
