"""What a model run carries as artifacts: its holdout metrics per series and per level of
a hierarchy, the inputs TFT weighs, its plots, and the input example of its signature."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from deepcast.features.covariates import CovariateSpec
from deepcast.features.hierarchy import LEVEL
from deepcast.features.schema import DS, ID, Y
from deepcast.features.windows import Panel
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines import plots
from deepcast.pipelines.levels import level_scores
from deepcast.pipelines.modelling import PreparedData

if TYPE_CHECKING:  # annotations only: mlflow is imported where a run needs it
    from deepcast.pipelines.config import PipelineConfig
    from deepcast.pipelines.tracking import Tracker

log = logging.getLogger("deepcast")


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


FULL_PREDICT_SERIES = 5000  # up to this many series, plots forecast them all (see below)


def log_model_plots(tracker: Tracker, predictor: Predictor, prep: PreparedData, fc: pd.DataFrame,
                    history: dict[str, list[float]], per_series: pd.DataFrame,
                    cfg: PipelineConfig) -> None:
    """Log a model's plots to its run under ``plots/``: a sample of series (largest, worst,
    seeded others) with history, holdout forecast and future forecast with bands; the loss
    curves; the error by horizon step."""
    from deepcast.pipelines.forecast import needs_future

    t0 = time.perf_counter()
    label, split, w = predictor.name, prep.require_holdout(), prep.window
    holdout = split.test_df[[ID, DS, Y]].assign(yhat=fc["yhat"].to_numpy())
    series = plots.pick_series(prep.df, per_series, metric=cfg.evaluation.metric,
                               seed=cfg.training.seed)
    ids = [uid for uid, _ in series]
    ahead = holdout.iloc[:0]
    if not needs_future(predictor):  # future covariates are unknown at training time
        # every series when few: the batch shape of the holdout forecast, so no retrace
        sample = prep.user_df if prep.panel.n_series <= FULL_PREDICT_SERIES \
            else prep.user_df.iloc[series_rows(prep.panel, ids)]
        ahead = predictor.predict(sample)
        ahead = ahead[ahead[ID].isin(ids)]
    history_df = prep.df.iloc[series_rows(prep.panel, ids, drop_last=split.size)]
    files = {"series.png": plots.series_figure(
        history_df, ahead, series, holdout, w.season_length, w.horizon,
        f"{label}: history, holdout forecast and forecast")}
    loss = plots.loss_figure(history, f"{label}: loss per epoch")
    if loss is not None:
        files["loss.png"] = loss
    errors = plots.horizon_errors(holdout, pd.Series(split.scale, index=prep.panel.ids),
                                  w.horizon)
    files["error_by_horizon.png"] = plots.horizon_figure(
        errors, f"{label}: error by horizon step")
    tracker.log_files(files, "plots")
    log.debug("plots of %s took %.2f s", label, time.perf_counter() - t0)


def series_rows(panel: Panel, ids: Sequence[str], drop_last: int = 0) -> np.ndarray:
    """Row positions (in the panel's frame) of the series ``ids``, in frame order, without
    the last ``drop_last`` points of each: a selection without a pass over the frame."""
    k = np.flatnonzero(np.isin(panel.ids, np.asarray(ids, dtype=str)))
    return np.concatenate([np.arange(panel.starts[i], panel.ends[i] - drop_last) for i in k]
                          + [np.zeros(0, dtype=np.int64)])


def serving_example(prep: PreparedData, n_series: int = 2, bottom: str | None = None
                    ) -> pd.DataFrame:
    """A small input in the served model's format (for its signature): the last lookback
    points of a few series, then ``horizon`` rows with the target left empty, which carry
    future covariates (and are ignored by models without them). A hierarchy's (its
    ``bottom`` level named): every bottom series, the served model builds the rest."""
    w, c, df = prep.window, prep.columns, prep.user_df
    ids = prep.panel.ids[:n_series] if bottom is None else \
        df.loc[df[LEVEL] == bottom, c.id_col].unique()
    part = df.iloc[series_rows(prep.panel, ids)].drop(columns=[LEVEL], errors="ignore")
    part = part.groupby(c.id_col, sort=False).tail(w.lookback + w.horizon)
    part = part.assign(**{c.target_col: part[c.target_col].where(
        part.groupby(c.id_col, sort=False).cumcount(ascending=False) >= w.horizon)})
    return part.reset_index(drop=True).astype({c.target_col: "float64"})
