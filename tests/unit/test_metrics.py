"""Metrics against hand-computed values."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.windows import panel_from_frame
from deepcast.forecasting import metrics


def test_point_metrics_hand_computed():
    y = np.array([[1.0, 2.0, 4.0]])
    yhat = np.array([[2.0, 2.0, 1.0]])
    assert metrics.mae(y, yhat)[0] == pytest.approx((1 + 0 + 3) / 3)
    assert metrics.rmse(y, yhat)[0] == pytest.approx(np.sqrt((1 + 0 + 9) / 3))
    # sMAPE: 200/3 * (1/3 + 0 + 3/5)
    assert metrics.smape(y, yhat)[0] == pytest.approx(200 / 3 * (1 / 3 + 3 / 5))
    assert metrics.mase(y, yhat, np.array([2.0]))[0] == pytest.approx(4 / 3 / 2)


def test_smape_zero_over_zero_is_zero():
    assert metrics.smape(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]))[0] == 0.0


def test_seasonal_scale_uses_training_span():
    df = pd.DataFrame({"unique_id": ["a"] * 6, "ds": range(6),
                       "y": [1.0, 3.0, 2.0, 6.0, 100.0, 200.0]})
    p = panel_from_frame(df)
    # season 2 over the first 4 points: |2-1|, |6-3| -> mean 2
    assert metrics.seasonal_scale(p, np.array([4]), 2)[0] == pytest.approx(2.0)
    # season 1 over the first 3 points: |3-1|, |2-3| -> 1.5
    assert metrics.seasonal_scale(p, np.array([3]), 1)[0] == pytest.approx(1.5)


def test_score_averages_series_and_skips_undefined_mase():
    y = np.array([[1.0, 1.0], [2.0, 4.0]])
    yhat = np.array([[2.0, 2.0], [2.0, 2.0]])
    s = metrics.score(y, yhat, np.array([0.0, 2.0]))  # series 0 has zero scale
    assert s["mae"] == pytest.approx((1.0 + 1.0) / 2)
    assert s["mase"] == pytest.approx(0.5)


def test_skill():
    assert metrics.skill(0.8, 1.0) == pytest.approx(0.2)
    assert np.isnan(metrics.skill(1.0, 0.0))


def test_mape_skips_zeros_rmsse_pinball_coverage_by_hand():
    from deepcast.forecasting import metrics

    y = np.array([[0.0, 2.0, 4.0]])
    yhat = np.array([[1.0, 1.0, 5.0]])
    # MAPE over y != 0 only: (|2-1|/2 + |4-5|/4) / 2 = 0.375 -> 37.5 %
    assert metrics.mape(y, yhat)[0] == pytest.approx(37.5)
    assert np.isnan(metrics.mape(np.zeros((1, 3)), yhat)[0])  # all zeros: undefined
    # RMSSE: MSE (1 + 1 + 1) / 3 = 1 over the squared scale 4 -> sqrt(0.25)
    assert metrics.rmsse(y, yhat, np.array([4.0]))[0] == pytest.approx(0.5)
    q = np.stack([yhat - 1, yhat + 1], axis=-1)  # levels 0.1, 0.9
    # errors y - q: lo: 0, 2, 0 -> 0.1 * (0 + 2 + 0); hi: -2, 0, -2 -> 0.1 * (2 + 0 + 2)
    assert metrics.pinball(y, q, [0.1, 0.9])[0] == pytest.approx((0.2 + 0.4) / 6)
    assert metrics.coverage(y, q[..., 0], q[..., 1])[0] == pytest.approx(1.0)  # bounds count
    # shifted up by 0.5: [0.5, 2.5], [0.5, 2.5], [4.5, 6.5] hold only y = 2
    assert metrics.coverage(y, q[..., 0] + 0.5, q[..., 1] + 0.5)[0] == pytest.approx(1 / 3)
    # CRPS from quantiles: twice the mean pinball loss
    assert metrics.crps(y, q, [0.1, 0.9])[0] == pytest.approx(0.2)
    # WQL: per level 2 x summed pinball (0.4 and 0.8), mean 0.6, over sum |y| = 6
    assert metrics.wql(y, q, [0.1, 0.9]) == pytest.approx(0.1)
    scores = metrics.quantile_scores(y, q, [0.1, 0.9], np.array([0.5]))
    assert scores["scaled_crps"][0] == pytest.approx(0.4)
    assert scores["coverage_q10_q90"][0] == pytest.approx(1.0)
