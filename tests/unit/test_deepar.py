"""DeepAR: teacher forcing that never reads ahead, ancestral sampling that is seeded and
calibrated, count likelihoods, the covariates the paper takes, and its option errors."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.covariates import CovariateSpec
from deepcast.features.windows import window_starts
from deepcast.forecasting.base import TrainingData, TrainSettings, WindowSpec
from deepcast.forecasting.models import build_forecaster
from tests.unit.test_covariates import _fit_with_covariates, _tiny

OPTIONS = {"hidden_size": 16, "layers": 2, "num_samples": 100}


def _sine(n=400, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float32)
    return (np.sin(2 * np.pi * t / 12) + noise * rng.normal(size=n)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    values = _sine()
    offsets = np.array([0, 200, 400])
    data = TrainingData(values, window_starts(offsets, 24, 6, stop=offsets[1:] - 60),
                        window_starts(offsets, 24, 6, stop=offsets[1:] - 30,
                                      min_target_end=offsets[1:] - 60))
    f = build_forecaster("deepar", "d", WindowSpec(24, 6, 12), OPTIONS)
    history = f.fit(data, TrainSettings(max_epochs=12, seed=0, batch_size=32,
                                        learning_rate=3e-3))
    return f, history, values


def _held_out(values):
    """Windows whose horizon lies in the last 30 points of each half (never trained on)."""
    starts = [s for end in (200, 400) for s in range(end - 30 - 24, end - 24 - 6 + 1)]
    x = np.stack([values[s : s + 24] for s in starts])
    return x, np.stack([values[s + 24 : s + 30] for s in starts])


def test_learns_the_next_value_and_its_bands_cover(fitted):
    f, history, values = fitted
    assert history["loss"][-1] < history["loss"][0]
    x, truth = _held_out(values)
    q = f.predict(x)
    assert q.shape == (len(x), 6, 3) and (np.diff(q, axis=-1) >= 0).all()
    naive = np.abs(truth - x[:, -1:]).mean()
    assert np.abs(q[..., 1] - truth).mean() < 0.5 * naive
    inside = ((truth >= q[..., 0]) & (truth <= q[..., 2])).mean()
    assert 0.6 <= inside <= 0.98  # nominal 80 %


def test_teacher_forcing_never_reads_ahead(fitted):
    """The parameters of step j depend on the target before j only: feeding other values
    from step 3 on leaves steps 0-3 unchanged and moves the later ones."""
    f, _, values = fitted
    x = np.stack([values[i : i + 24] for i in (0, 100)])[..., None]
    target = np.zeros((2, 6), np.float32)
    a = np.asarray(f.model.predict_on_batch({"y": x, "target": target}))
    target[:, 3:] = 3.0
    b = np.asarray(f.model.predict_on_batch({"y": x, "target": target}))
    np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[:, 4:], b[:, 4:])


def test_sampling_is_seeded(fitted):
    f, _, values = fitted
    x, _ = _held_out(values)
    np.testing.assert_array_equal(f.predict(x), f.predict(x))
    other = build_forecaster("deepar", "d", f.spec, {**OPTIONS, "sampling_seed": 1})
    other.model = f.model
    assert not np.array_equal(other.predict(x), f.predict(x))


def test_count_likelihood_forecasts_whole_counts():
    rng = np.random.default_rng(0)
    values = rng.poisson(4.0, 300).astype(np.float32)
    offsets = np.array([0, 150, 300])
    starts = window_starts(offsets, 24, 6)
    f = build_forecaster("deepar", "d", WindowSpec(24, 6),
                         {**OPTIONS, "distribution": "negbin"})
    f.fit(TrainingData(values, starts, starts[:0]), TrainSettings(max_epochs=4, batch_size=32))
    q = f.predict(np.stack([values[:24], values[150:174]]))
    assert (q == np.round(q)).all() and (q >= 0).all()
    assert 2.0 <= np.median(q[..., 1]) <= 6.0


def test_future_and_static_covariates_are_read_and_past_ones_are_not():
    df = _tiny().assign(temp=np.random.default_rng(1).normal(size=180))
    spec = CovariateSpec(static=("kind",), past=("temp",), future=("promo",),
                         categorical=("kind",), id_embedding=3)
    predictor = _fit_with_covariates(df, spec, "deepar",
                                     options={"hidden_size": 8, "layers": 1,
                                              "num_samples": 20})
    assert predictor.forecaster.input_names == ["y", "future", "static_cat", "series",
                                                "target"]
    future = pd.DataFrame({"unique_id": np.repeat(["s0", "s1", "s2"], 4),
                           "ds": np.tile(np.arange(61, 65), 3), "promo": 0.0,
                           "kind": np.repeat(["even", "odd", "even"], 4)})
    frame = pd.concat([df, future.assign(y=np.nan)], ignore_index=True)
    fc = predictor.predict(frame)
    promo = frame.assign(promo=np.where(frame["y"].isna(), 5.0, frame["promo"]))
    assert not np.allclose(predictor.predict(promo)["yhat"], fc["yhat"])
    temp = frame.assign(temp=frame["temp"] + 3.0)
    np.testing.assert_allclose(predictor.predict(temp)["yhat"], fc["yhat"])


def test_option_errors():
    with pytest.raises(ValueError, match="distribution_quantiles"):
        build_forecaster("deepar", "d", WindowSpec(24, 6), {"quantiles": [0.1, 0.9]})
    with pytest.raises(ValueError, match="distribution"):
        build_forecaster("deepar", "d", WindowSpec(24, 6), {"distribution": None})
    with pytest.raises(ValueError, match="instance_norm"):
        build_forecaster("deepar", "d", WindowSpec(24, 6), {"instance_norm": False})
