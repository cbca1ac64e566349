"""Per-series scaling: fit on the training span only; round trip; unseen series."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.scalers import SeriesScaler
from deepcast.features.windows import panel_from_frame


def _panel(values_a, values_b):
    df = pd.DataFrame({
        "unique_id": ["a"] * len(values_a) + ["b"] * len(values_b),
        "ds": list(range(len(values_a))) + list(range(len(values_b))),
        "y": list(values_a) + list(values_b),
    })
    return panel_from_frame(df)


def test_fit_uses_training_span_only():
    train = [1.0, 2.0, 3.0, 4.0]
    p1 = _panel(train + [1000.0, 2000.0], [5.0, 5.0, 7.0, 7.0, -50.0, 99.0])
    p2 = _panel(train + [-7.0, 3.0], [5.0, 5.0, 7.0, 7.0, 0.0, 0.0])
    s1 = SeriesScaler().fit(p1, n_fit=np.array([4, 4]))
    s2 = SeriesScaler().fit(p2, n_fit=np.array([4, 4]))
    # the holdout values differ wildly, the statistics do not move
    assert s1.params_ == s2.params_
    assert s1.params_["a"] == pytest.approx((2.5, np.std(train)))
    assert s1.params_["b"] == pytest.approx((6.0, 1.0))


def test_transform_inverse_round_trip():
    p = _panel([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 50.0])
    s = SeriesScaler().fit(p)
    z = s.transform(p)
    assert z.values[:4].mean() == pytest.approx(0.0, abs=1e-6)
    back = s.inverse_transform(p, np.array([[0.0, 1.0], [0.0, -1.0]]))
    assert back[0] == pytest.approx([2.5, 2.5 + np.std([1, 2, 3, 4])])
    assert back[1] == pytest.approx([30.0, 30.0 - np.std([10, 30, 50])])


def test_constant_series_has_unit_scale_and_serialises():
    p = _panel([5.0, 5.0, 5.0], [1.0, 2.0])
    s = SeriesScaler().fit(p)
    assert s.params_["a"] == (5.0, 1.0)
    s2 = SeriesScaler.from_dict(s.to_dict())
    assert s2.params_ == s.params_


def test_unseen_series_falls_back_to_own_history():
    s = SeriesScaler().fit(_panel([1.0, 2.0, 3.0], [4.0, 5.0]))
    new = _panel([1.0, 2.0, 3.0], [100.0, 300.0])
    new = panel_from_frame(pd.DataFrame({"unique_id": ["a"] * 3 + ["zz"] * 2,
                                         "ds": [0, 1, 2, 0, 1],
                                         "y": [1.0, 2.0, 3.0, 100.0, 300.0]}))
    params = s.params_for(new)
    loc, scale = params.loc, params.scale
    assert loc[0] == pytest.approx(2.0)
    assert (loc[1], scale[1]) == pytest.approx((200.0, 100.0))
    assert s.unseen(new.ids) == ["zz"]


def test_none_scaler_is_identity():
    p = _panel([1.0, 2.0], [3.0, 4.0])
    s = SeriesScaler("none").fit(p)
    np.testing.assert_array_equal(s.transform(p).values, p.values)


def test_statistics_in_blocks_equal_one_pass(monkeypatch):
    """Blocks of whole series (bounded temporaries) give exactly the one-pass statistics."""
    import deepcast.features.scalers as scalers

    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 30, size=40)
    df = pd.DataFrame({
        "unique_id": np.repeat([f"s{i:02d}" for i in range(40)], lengths),
        "ds": np.concatenate([np.arange(n) for n in lengths]),
        "y": rng.normal(10, 4, int(lengths.sum())),
    })
    panel = panel_from_frame(df)
    n_fit = np.maximum(panel.lengths - 3, 0)
    whole = SeriesScaler().fit(panel, n_fit).params_
    monkeypatch.setattr(scalers, "_BLOCK", 7)
    assert SeriesScaler().fit(panel, n_fit).params_ == whole
