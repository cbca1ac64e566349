"""Cross-validation results: per-window scores, and ensembles whose learned weights are
cross-fitted over the windows (no window is scored by weights it helped fit)."""

from __future__ import annotations

import numpy as np
import pytest

from deepcast.forecasting.crossval import SpanBacktest, ensemble_backtest, member_arrays
from deepcast.forecasting.ensemble import ensemble_weights
from deepcast.forecasting.metrics import score


def _backtests(n_series=5, windows=3, h=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 2, size=(n_series * windows, h))
    scale = rng.uniform(0.5, 2, size=n_series * windows)
    good = y + rng.normal(0, 0.3, size=y.shape)
    window = np.tile(np.arange(windows), n_series)
    good[window == 2] += 5  # good everywhere but the last window
    fair = y + rng.normal(0, 1.0, size=y.shape)
    return [SpanBacktest(y, f, scale, windows, n_series) for f in (good, fair)]


def test_scores_are_per_window_over_the_series():
    a, _ = _backtests()
    w = np.tile(np.arange(3), 5)
    expected = [score(a.y[w == k], a.f[w == k], a.scale[w == k])["mase"] for k in range(3)]
    assert a.scores("mase") == pytest.approx(expected)
    assert a.scores("mase")[2] > 3 * a.scores("mase")[0]  # the planted bad window
    resid, scale = a.residual_rows()
    assert resid.shape == a.y.shape and np.array_equal(scale, a.scale)


@pytest.mark.parametrize("method", ["greedy", "weighted", "stacking"])
def test_learned_weights_score_each_window_with_weights_fit_on_the_others(method):
    members = _backtests()
    out = ensemble_backtest(method, members)
    y, f, scale = member_arrays(members)
    w = np.tile(np.arange(3), 5)
    for k in range(3):
        fit = w != k
        weights = np.asarray(ensemble_weights(method, y[fit], f[fit], scale[fit]))
        assert np.allclose(out.f[w == k], np.einsum("nhm,hm->nh", f[w == k], weights))
    # in-sample weights (fit on every window) would differ: the cross-fit is not a no-op
    everywhere = np.asarray(ensemble_weights(method, y, f, scale))
    assert not np.allclose(out.f, np.einsum("nhm,hm->nh", f, everywhere))


def test_mean_median_and_a_member_without_backtest():
    a, b = _backtests()
    assert np.allclose(ensemble_backtest("mean", [a, b]).f, (a.f + b.f) / 2)
    assert np.allclose(ensemble_backtest("median", [a, b, b]).f, b.f)
    assert ensemble_backtest("mean", [a, None]) is None
    assert ensemble_backtest("greedy", []) is None
