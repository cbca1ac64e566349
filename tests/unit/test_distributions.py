"""Distribution heads: the likelihoods and quantiles by hand (scipy), a head on every neural
family (trained, ordered quantiles, safe save/load), calibration on Gaussian noise, and the
config error when a quantile head is asked for too."""

import numpy as np
import pytest
from scipy import stats

from deepcast.forecasting.base import TrainSettings, WindowSpec
from deepcast.forecasting.distributions import NegativeLogLikelihood, quantiles_of
from deepcast.forecasting.keras_model import KerasForecaster
from deepcast.forecasting.models import build_forecaster, families, load_forecaster
from tests.unit.test_models import SMALL, _fit, _tiny_data, _x

# the head is built in one place for the families that use the shared head (mlp stands for
# them), and by each family that wires its own output (the rest)
HEADS = ["mlp", "nhits", "nbeats", "tide", "tsmixer", "tft"]
assert set(HEADS) - {"mlp"} == {f for f, cls in families().items() if issubclass(
    cls, KerasForecaster) and cls.forward is not KerasForecaster.forward}


def test_likelihoods_and_quantiles_by_hand():
    y = np.array([[0.3, -1.2, 4.0]], dtype=np.float32)
    normal = np.array([[[0.0, 1.5], [-1.0, 0.5], [2.0, 3.0]]], dtype=np.float32)
    t = np.array([[[0.0, 1.5, 3.0], [-1.0, 0.5, 2.5], [2.0, 3.0, 30.0]]], dtype=np.float32)
    expect = -stats.norm.logpdf(y[0], normal[0, :, 0], normal[0, :, 1]).mean()
    assert float(NegativeLogLikelihood("normal")(y, normal)) == pytest.approx(expect, rel=1e-5)
    expect = -stats.t.logpdf(y[0], t[0, :, 2], t[0, :, 0], t[0, :, 1]).mean()
    assert float(NegativeLogLikelihood("studentt")(y, t)) == pytest.approx(expect, rel=1e-5)
    q = quantiles_of("studentt", t, (0.1, 0.5, 0.9))
    np.testing.assert_allclose(q[0, :, 0], stats.t.ppf(0.1, t[0, :, 2], t[0, :, 0], t[0, :, 1]),
                               rtol=1e-6)
    np.testing.assert_allclose(q[..., 1], t[..., 0])  # the median is the location


@pytest.mark.parametrize("family", HEADS)
def test_every_neural_family_takes_a_distribution_head(family, tmp_path):
    dist = "studentt" if family in ("nhits", "tide") else "normal"
    f, history, values = _fit(family, epochs=2, options={"distribution": dist})
    assert f.quantiles == (0.1, 0.5, 0.9) and np.isfinite(history["loss"]).all()
    q = f.predict(_x(values))
    assert q.shape == (3, 6, 3) and (np.diff(q, axis=-1) > 0).all()
    g = load_forecaster(f.save(tmp_path / family))
    np.testing.assert_allclose(g.predict(_x(values)), q, rtol=1e-5, atol=1e-5)


def test_a_normal_head_is_calibrated_on_gaussian_noise():
    """sin + N(0, 0.3^2): the 10-90 % band of a trained normal head holds about 80 % of
    unseen points."""
    rng = np.random.default_rng(1)
    data = _tiny_data(n=1200)
    t = np.arange(1200)
    values = (np.sin(2 * np.pi * t / 12) + 0.3 * rng.normal(size=1200)).astype(np.float32)
    data = type(data)(values, data.train_starts[data.train_starts < 500], data.val_starts[:0])
    f = build_forecaster("mlp", "mlp", WindowSpec(24, 6, 12),
                         {**SMALL["mlp"], "distribution": "normal", "instance_norm": False})
    f.fit(data, TrainSettings(max_epochs=15, batch_size=32, seed=0, learning_rate=3e-3))
    starts = np.arange(600, 1170, 3)
    x = np.stack([values[s : s + 24] for s in starts])
    y = np.stack([values[s + 24 : s + 30] for s in starts])
    q = f.predict(x)
    inside = ((y >= q[..., 0]) & (y <= q[..., 2])).mean()
    assert 0.7 <= inside <= 0.9, inside


def test_quantile_and_distribution_heads_exclude_each_other():
    with pytest.raises(ValueError, match="exclude each other"):
        build_forecaster("mlp", "m", WindowSpec(24, 6), {"quantiles": [0.1, 0.9],
                                                         "distribution": "normal"})
    with pytest.raises(ValueError, match="distribution"):
        build_forecaster("mlp", "m", WindowSpec(24, 6), {"distribution": "gamma"})


def test_count_likelihoods_and_quantiles_by_hand():
    y = np.array([[0.0, 3.0, 11.0]], dtype=np.float32)
    rate = np.array([[[0.5], [2.5], [9.0]]], dtype=np.float32)
    nb = np.array([[[0.5, 0.3], [2.5, 1.2], [9.0, 0.05]]], dtype=np.float32)
    expect = -stats.poisson.logpmf(y[0], rate[0, :, 0]).mean()
    assert float(NegativeLogLikelihood("poisson")(y, rate)) == pytest.approx(expect, rel=1e-5)
    n, p = 1 / nb[0, :, 1], 1 / (1 + nb[0, :, 1] * nb[0, :, 0])
    expect = -stats.nbinom.logpmf(y[0], n, p).mean()
    assert float(NegativeLogLikelihood("negbin")(y, nb)) == pytest.approx(expect, rel=1e-5)
    q = quantiles_of("negbin", nb, (0.1, 0.5, 0.9))
    np.testing.assert_array_equal(q[0, :, 2], stats.nbinom.ppf(0.9, n, p))
    assert (q == np.round(q)).all()  # whole counts


@pytest.mark.parametrize("kind", ["poisson", "negbin"])
def test_a_count_head_learns_counts_and_round_trips(kind, tmp_path):
    """Poisson counts around a seasonal rate of 2-14: whole, ordered quantiles whose
    10-90 % band holds at least about 80 % of unseen counts; safe save/load."""
    rng = np.random.default_rng(2)
    t = np.arange(1200)
    values = rng.poisson(8 + 6 * np.sin(2 * np.pi * t / 12)).astype(np.float32)
    data = _tiny_data(n=1200)
    data = type(data)(values, data.train_starts[data.train_starts < 500], data.val_starts[:0])
    f = build_forecaster("mlp", "mlp", WindowSpec(24, 6, 12),
                         {**SMALL["mlp"], "distribution": kind})
    f.fit(data, TrainSettings(max_epochs=10, batch_size=32, seed=0, learning_rate=3e-3))
    starts = np.arange(600, 1170, 3)
    x = np.stack([values[s : s + 24] for s in starts])
    y = np.stack([values[s + 24 : s + 30] for s in starts])
    q = f.predict(x)
    assert (q == np.round(q)).all() and (np.diff(q, axis=-1) >= 0).all() and (q >= 0).all()
    inside = ((y >= q[..., 0]) & (y <= q[..., 2])).mean()
    assert 0.72 <= inside <= 0.97, inside
    g = load_forecaster(f.save(tmp_path / kind))
    np.testing.assert_allclose(g.predict(x), q)


def test_count_heads_need_unscaled_counts(retail_csv):
    import pandas as pd

    from deepcast.features.errors import ConfigError, DataError
    from deepcast.pipelines.config import parse_config
    from deepcast.pipelines.modelling import fit_model, prepare, training_settings
    from tests.conftest import pipeline_dict

    models = [{"type": "mlp", "hidden_size": 8, "distribution": "negbin"}]
    with pytest.raises(ConfigError, match=r"models.0 \(mlp\): distribution: negbin .*"
                                         "features.scaler: none"):
        parse_config(pipeline_dict(retail_csv, models=models))
    cfg = parse_config(pipeline_dict(retail_csv, models=models, features={
        "lookback": 24, "horizon": 6, "scaler": "none"}))
    df = pd.read_csv(retail_csv, parse_dates=["ds"])
    first = df["unique_id"].iloc[0]
    df.loc[df.index[3], "y"] = -1.0  # a return booked as a negative sale
    with pytest.raises(DataError, match=f"1 series have values below zero: {first}"):
        fit_model(cfg.models[0], prepare(df, cfg), training_settings(cfg))
