"""Ensembles: combination rules by hand, weights from out-of-sample errors, stacking on
out-of-sample forecasts only, save/load with members, and the YAML entry."""

import numpy as np
import pytest

from deepcast.features.errors import ConfigError
from deepcast.forecasting.base import WindowSpec
from deepcast.forecasting.ensemble import (
    build_ensemble,
    ensemble_weights,
    greedy_weights,
    inverse_error_weights,
    stacking_weights,
)
from deepcast.forecasting.models import build_forecaster, load_forecaster
from deepcast.pipelines.config import parse_config
from tests.conftest import pipeline_dict

SPEC = WindowSpec(4, 2, 2)
X = np.array([[1.0, 2.0, 3.0, 5.0]])  # naive -> 5, 5; mean -> 2.75; drift -> 6.33, 7.67


def _members():
    return [build_forecaster(f, f, SPEC, {}) for f in ("naive", "mean", "drift")]


def test_mean_median_weighted_by_hand(tmp_path):
    f = np.array([[5.0, 5.0], [2.75, 2.75], [5 + 4 / 3, 5 + 8 / 3]])  # members x horizon
    mean = build_ensemble("e", "mean", _members())
    np.testing.assert_allclose(mean.predict(X)[0], f.mean(axis=0))
    median = build_ensemble("e", "median", _members())
    np.testing.assert_allclose(median.predict(X)[0], np.median(f, axis=0))
    w = [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    weighted = build_ensemble("e", "weighted", _members(), w)
    np.testing.assert_allclose(weighted.predict(X)[0], [(5 + 2.75) / 2, 5 + 8 / 3])
    loaded = load_forecaster(weighted.save(tmp_path / "ens"))
    assert [m.family for m in loaded.members] == ["naive", "mean", "drift"]
    np.testing.assert_allclose(loaded.predict(X), weighted.predict(X))


def test_weights_from_errors_and_stacking():
    # member errors 1, 2, 4 (MASE) -> weights 4/7, 2/7, 1/7 at every step
    w = inverse_error_weights(np.array([1.0, 2.0, 4.0]), 2)
    np.testing.assert_allclose(w, [[4 / 7, 2 / 7, 1 / 7]] * 2)
    # stacking recovers the combination that generated y, and its weights sum to one
    rng = np.random.default_rng(0)
    f = rng.normal(size=(500, 2, 3))
    y = 0.7 * f[..., 0] + 0.3 * f[..., 2]
    w = np.array(stacking_weights(y, f, ridge=1e-6))
    np.testing.assert_allclose(w, [[0.7, 0.0, 0.3]] * 2, atol=1e-3)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_greedy_selection_by_hand():
    """Caruana selection with replacement: a member that only adds error is never picked,
    two members with opposite errors are mixed half and half, the weights sum to one and
    the chosen mean is no worse than the best member alone."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=(400, 3))
    good_hi, good_lo, bad = y + 0.5, y - 0.5, y + rng.normal(scale=3.0, size=y.shape)
    f = np.stack([good_hi, bad, good_lo], axis=-1)
    w = np.array(greedy_weights(y, f))
    assert w[1] == 0.0 and abs(w[0] - 0.5) <= 0.02 and abs(w[2] - 0.5) <= 0.02
    np.testing.assert_allclose(w.sum(), 1.0)
    mixed = np.abs(y - f @ w).mean()
    assert mixed <= min(np.abs(y - f[..., k]).mean() for k in range(3))
    # one clearly best member: all its weight; missing points are left out, not propagated
    f2 = np.stack([y + 0.01, y + 1.0], axis=-1)
    f2[0, 0, 1] = np.nan
    assert greedy_weights(y, f2) == [1.0, 0.0]
    # through ensemble_weights: one row per horizon step, normalised by each row's scale
    rows = ensemble_weights("greedy", y, f, np.full(len(y), 2.0))
    assert len(rows) == 3 and all(r == rows[0] for r in rows)
    np.testing.assert_allclose(rows[0], w)


def test_ensemble_yaml_is_validated(retail_csv):
    raw = pipeline_dict(retail_csv, ensemble=[{"name": "avg", "method": "mean",
                                               "members": ["naive", "lstm"]}])
    assert parse_config(raw).ensemble[0].members == ["naive", "lstm"]
    for bad, text in [
        ({"name": "avg", "method": "mean", "members": ["naive", "prophet"]}, "unknown member"),
        ({"name": "avg", "method": "mean", "members": ["naive"]}, "at least two"),
        ({"name": "bag", "method": "bagging"}, "needs `model:`"),
        ({"name": "naive", "method": "mean", "members": ["naive", "lstm"]}, "duplicate"),
    ]:
        with pytest.raises(ConfigError, match=text):
            parse_config(pipeline_dict(retail_csv, ensemble=[bad]))
