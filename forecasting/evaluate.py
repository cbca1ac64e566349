"""Holdout evaluation through the same interface that serves forecasts.

Every model -- a candidate in memory or the registry's champion -- is scored by calling
``predict(history) -> forecast frame`` on the same cut-offs, so scores are comparable.
When ``test_size`` exceeds the model's horizon the holdout is covered by consecutive
origins, each forecasting from the actual history up to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from deepcast.features.schema import DS, ID, Y
from deepcast.features.windows import panel_from_frame
from deepcast.forecasting import metrics
from deepcast.forecasting.keras_model import quantile_column

PredictFn = Callable[[pd.DataFrame], pd.DataFrame]


def split_holdout(df: pd.DataFrame, test_size: int, id_col: str = ID
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the last ``test_size`` rows of every series go to test."""
    test = _in_holdout(df, test_size, id_col)
    return df[~test].reset_index(drop=True), df[test].reset_index(drop=True)


def holdout_rows(df: pd.DataFrame, test_size: int, id_col: str = ID) -> pd.DataFrame:
    """The test half of :func:`split_holdout` alone (no copy of the training span)."""
    return df[_in_holdout(df, test_size, id_col)].reset_index(drop=True)


def _in_holdout(df: pd.DataFrame, test_size: int, id_col: str) -> pd.Series:
    return df.groupby(id_col, sort=False).cumcount(ascending=False) < test_size


def holdout_forecast(predict: PredictFn, df: pd.DataFrame, test_size: int,
                     id_col: str = ID, time_col: str = DS, target_col: str = Y
                     ) -> pd.DataFrame:
    """Forecasts for the last ``test_size`` points of each series: ``unique_id, ds, yhat``.

    The first origin is the end of the training span; each next origin moves forward by
    the model's own horizon (read from its output), using actual history up to it. The rows
    after the origin are passed too, with the target blanked: they carry the future
    covariates a model may need, never the values it forecasts.
    """
    pos_from_end = df.groupby(id_col, sort=False).cumcount(ascending=False).to_numpy()
    keys = df.loc[pos_from_end < test_size, [id_col, time_col]].reset_index(drop=True)
    keys.columns = [ID, DS]
    return forecast_origins(predict, df, test_size, pos_from_end, keys, target_col)


def forecast_origins(predict: PredictFn, df: pd.DataFrame, test_size: int,
                     pos_from_end: np.ndarray, keys: pd.DataFrame, target_col: str = Y
                     ) -> pd.DataFrame:
    """:func:`holdout_forecast` with the rows located already: ``pos_from_end`` (each row's
    position counted from its series' end, 0 = last) and ``keys`` (``unique_id, ds`` of the
    holdout rows, in frame order). A quantile model's ``yhat_q..`` columns are kept."""
    n_series = int(np.count_nonzero(pos_from_end == 0))
    parts, cut = [], test_size
    while cut > 0:
        frame = df.copy()
        frame[target_col] = frame[target_col].where(pos_from_end >= cut)
        fc = predict(frame)
        steps = len(fc) // max(n_series, 1)
        if steps < 1:
            raise ValueError("the model returned no forecast rows")
        parts.append(fc[[ID, DS, "yhat", *(c for c in fc.columns if c.startswith("yhat_q"))]])
        cut -= steps
    fc = pd.concat(parts, ignore_index=True)
    fc = fc.astype({DS: keys[DS].dtype})
    return keys.merge(fc, on=[ID, DS], how="left", validate="one_to_one")


def score_holdout(forecast: pd.DataFrame, df: pd.DataFrame, test_size: int, season_length: int
                  ) -> tuple[dict[str, float], pd.DataFrame]:
    """Aggregate metrics and a per-series table for a holdout forecast of ``df``."""
    train, test = split_holdout(df, test_size)
    panel = panel_from_frame(train)
    scale = metrics.seasonal_scale(panel, panel.lengths, season_length)
    return score_test(forecast, test, scale, test_size)


def score_test(forecast: pd.DataFrame, test: pd.DataFrame, scale: np.ndarray, test_size: int
               ) -> tuple[dict[str, float], pd.DataFrame]:
    """:func:`score_holdout` of an already split holdout: ``test`` holds the last
    ``test_size`` rows of every series, ``scale`` each series' MASE scale (its training
    span's seasonal naive MAE)."""
    levels = quantile_levels(forecast)
    q_cols = [quantile_column(q) for q in levels]
    joined = test.merge(forecast[[ID, DS, "yhat", *q_cols]], on=[ID, DS], how="left")
    n = joined[ID].nunique()
    y = joined[Y].to_numpy(dtype=np.float64).reshape(n, test_size)
    yhat = joined["yhat"].to_numpy(dtype=np.float64).reshape(n, test_size)
    per_series = pd.DataFrame({
        ID: joined[ID].to_numpy()[::test_size],
        "mae": metrics.mae(y, yhat),
        "rmse": metrics.rmse(y, yhat),
        "smape": metrics.smape(y, yhat),
        "mase": metrics.mase(y, yhat, scale),
    })
    scores = metrics.score(y, yhat, scale)
    if levels:  # a quantile model: its quantiles scored too
        q = joined[q_cols].to_numpy(np.float64).reshape(n, test_size, len(levels))
        for name, v in metrics.quantile_scores(y, q, levels, scale).items():
            per_series[name] = v
            scores[name] = metrics.series_mean(v)
        scores["wql"] = metrics.wql(y, q, levels)
    return scores, per_series


def quantile_levels(forecast: pd.DataFrame) -> tuple[float, ...]:
    """The quantile levels whose ``yhat_q..`` columns ``forecast`` holds, ascending."""
    found = [c for c in forecast.columns if c.startswith("yhat_q")]
    return tuple(sorted(float(c.removeprefix("yhat_q")) / 100 for c in found))
