"""The model contract over every family: shapes, baselines by hand, save/load, seeds."""

import numpy as np
import pytest

from features.windows import make_dataset, window_starts
from forecasting.base import TrainSettings, WindowSpec, build_forecaster, families, load_forecaster


def test_naive_and_seasonal_naive_by_hand():
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    spec = WindowSpec(lookback=6, horizon=5, season_length=3)
    assert build_forecaster("naive", "n", spec, {}).predict(x).tolist() == [[6.0] * 5]
    # last season is 4, 5, 6 -> repeated
    snaive = build_forecaster("seasonal_naive", "s", spec, {})
    assert snaive.predict(x).tolist() == [[4.0, 5.0, 6.0, 4.0, 5.0]]


def test_unknown_family():
    with pytest.raises(ValueError, match="known: .*lstm"):
        build_forecaster("nope", "n", WindowSpec(4, 2), {})


def _tiny_data(n=400):
    rng = np.random.default_rng(0)
    t = np.arange(n, dtype=np.float32)
    values = (np.sin(2 * np.pi * t / 12) + 0.1 * rng.normal(size=n)).astype(np.float32)
    offsets = np.array([0, n // 2, n])
    return values, window_starts(offsets, 24, 6)


def _fit_lstm(seed: int):
    values, starts = _tiny_data()
    f = build_forecaster("lstm", "lstm", WindowSpec(24, 6, 12), {"units": 8})
    train = make_dataset(values, starts, 24, 6, batch_size=32, shuffle=True, seed=seed)
    history = f.fit(train, None, TrainSettings(max_epochs=2, seed=seed, batch_size=32))
    return f, history, values


@pytest.mark.parametrize("family", sorted(families()))
def test_every_family_honours_the_contract(family, tmp_path):
    values, starts = _tiny_data()
    spec = WindowSpec(24, 6, 12)
    f = build_forecaster(family, family, spec, {"units": 4} if family == "lstm" else {})
    if f.trainable:
        f.fit(make_dataset(values, starts, 24, 6, 32, seed=0), None,
              TrainSettings(max_epochs=1, batch_size=32))
    x = np.stack([values[:24], values[100:124], values[300:324]])
    yhat = f.predict(x)
    assert yhat.shape == (3, 6) and np.isfinite(yhat).all()
    g = load_forecaster(f.save(tmp_path / family))
    np.testing.assert_allclose(g.predict(x), yhat, rtol=1e-5, atol=1e-6)


def test_lstm_same_seed_same_weights_and_losses():
    f1, h1, values = _fit_lstm(seed=3)
    f2, h2, _ = _fit_lstm(seed=3)
    assert h1["loss"] == h2["loss"]
    x = values[None, :24]
    np.testing.assert_array_equal(f1.predict(x), f2.predict(x))


def test_lstm_learns_something():
    f, history, values = _fit_lstm(seed=0)
    assert history["loss"][-1] < history["loss"][0]


def test_nan_loss_fails_the_run():
    from features.errors import RunFailed

    values, starts = _tiny_data()
    values = values.copy()
    values[50] = np.nan
    f = build_forecaster("lstm", "lstm", WindowSpec(24, 6, 12),
                         {"units": 4, "instance_norm": False})
    with pytest.raises(RunFailed, match="NaN"):
        f.fit(make_dataset(values, starts, 24, 6, 32, shuffle=False), None,
              TrainSettings(max_epochs=2, batch_size=32))
