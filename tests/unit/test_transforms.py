"""Target transforms (features.target_transform): exact round trips, the Box-Cox lambda
per series on the training span only, the domain errors, saved scalers, and a trained
quantile model whose every output column comes back through the inverse."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features import transforms
from deepcast.features.errors import DataError
from deepcast.features.scalers import SeriesScaler
from deepcast.features.windows import panel_from_frame


def _panel(**series):
    rows = [(k, i, v) for k, vals in series.items() for i, v in enumerate(vals)]
    return panel_from_frame(pd.DataFrame(rows, columns=["unique_id", "ds", "y"]))


@pytest.mark.parametrize("kind,lam", [("log1p", 1.0), ("boxcox", 0.0), ("boxcox", 0.5),
                                      ("boxcox", -0.7), ("none", 1.0)])
def test_forward_and_inverse_are_exact_inverses(kind, lam):
    y = np.array([0.5, 1.0, 3.0, 120.0])
    np.testing.assert_allclose(transforms.inverse(kind, transforms.forward(kind, y, lam), lam),
                               y, rtol=1e-12)


def test_boxcox_by_hand_and_inverse_clipped_to_its_range():
    assert transforms.forward("boxcox", np.array([4.0]), 0.5)[0] == pytest.approx(2.0)  # (2-1)/.5
    assert transforms.forward("boxcox", np.array([np.e]), 0.0)[0] == pytest.approx(1.0)
    # below the range (lambda z + 1 < 0): y = 0, not NaN
    assert transforms.inverse("boxcox", np.array([-5.0]), 0.5)[0] == 0.0
    assert np.isfinite(transforms.inverse("boxcox", np.array([5.0]), -0.5)).all()


def test_lambda_is_fit_per_series_on_the_training_span():
    rng = np.random.default_rng(0)
    lognormal = np.exp(rng.normal(3, 0.6, 200))  # log is the right transform: lambda ~ 0
    square = rng.normal(10, 1, 200) ** 2  # the square root is: lambda ~ 0.5
    panel = _panel(a=lognormal, b=square)
    scaler = SeriesScaler(transform="boxcox").fit(panel)
    assert abs(scaler.lambdas_["a"]) < 0.15 and abs(scaler.lambdas_["b"] - 0.5) < 0.25
    # only the first n_fit points count: a wild tail after them changes nothing
    tail = _panel(a=np.r_[lognormal, np.full(50, 1e6)], b=np.r_[square, np.full(50, 1e6)])
    again = SeriesScaler(transform="boxcox").fit(tail, np.array([200, 200]))
    assert again.lambdas_ == pytest.approx(scaler.lambdas_)
    assert transforms.fit_lambda(np.full(10, 3.0)) == 1.0  # flat: nothing to estimate
    assert transforms.LAMBDA_RANGE[0] <= transforms.fit_lambda(np.exp(np.exp(
        np.linspace(0, 3, 50)))) <= transforms.LAMBDA_RANGE[1]


def test_scaled_round_trip_and_saved_scaler():
    panel = _panel(a=[1.0, 2.0, 4.0, 8.0, 16.0], b=[3.0, 3.5, 2.5, 4.0, 3.0])
    for kind in ("log1p", "boxcox"):
        scaler = SeriesScaler(transform=kind).fit(panel)
        scaled = scaler.transform(panel).values.reshape(2, 5)
        assert np.allclose(scaled.mean(axis=1), 0, atol=1e-6)  # standardised after it
        back = scaler.inverse_transform(panel, scaled)
        np.testing.assert_allclose(back, panel.values.reshape(2, 5), rtol=1e-5)
        loaded = SeriesScaler.from_dict(scaler.to_dict())
        np.testing.assert_allclose(loaded.transform(panel).values, scaled.ravel())
    # a scaler saved before transforms existed loads as none
    old = {"method": "standard", "ids": ["a"], "loc": [1.0], "scale": [2.0]}
    assert SeriesScaler.from_dict(old).target_transform == "none"


def test_values_outside_the_domain_name_the_series():
    with pytest.raises(DataError, match=r"greater than 0; 1 series .*: b") as info:
        SeriesScaler(transform="boxcox").fit(_panel(a=[1.0, 2.0], b=[1.0, 0.0]))
    assert "log1p" in info.value.hint
    with pytest.raises(DataError, match="greater than -1"):
        SeriesScaler(transform="log1p").fit(_panel(a=[1.0, -2.0]))
    SeriesScaler(transform="log1p").fit(_panel(a=[0.0, 3.0]))  # zeros are fine for log1p


def test_every_output_column_is_inverted(tmp_path):
    """A quantile MLP on a multiplicative panel with log1p: yhat and its quantiles come back
    in the data's units, ordered, positive; a saved bundle forecasts the same."""
    from deepcast.features.schema import ColumnSpec
    from deepcast.features.windows import pad_panel, window_starts
    from deepcast.forecasting.base import TrainingData, TrainSettings, WindowSpec
    from deepcast.forecasting.models import build_forecaster
    from deepcast.forecasting.predictor import Predictor

    t = np.arange(80)
    df = pd.concat([pd.DataFrame({"unique_id": f"s{k}", "ds": t + 1,
                                  "y": (10 + 40 * k) * np.exp(0.02 * t)
                                  * (1 + 0.2 * np.sin(2 * np.pi * t / 12))})
                    for k in range(3)], ignore_index=True)
    panel = panel_from_frame(df)
    scaler = SeriesScaler(transform="log1p").fit(panel)
    scaled = pad_panel(scaler.transform(panel), np.zeros(3, dtype=np.int64))
    f = build_forecaster("mlp", "mlp", WindowSpec(24, 6, 12),
                         {"hidden_size": 16, "quantiles": [0.1, 0.9]})
    f.fit(TrainingData(scaled.values, window_starts(scaled.offsets, 24, 6),
                       np.zeros(0, np.int64)), TrainSettings(max_epochs=3, batch_size=32))
    predictor = Predictor(f, scaler, ColumnSpec(freq=1), None, 24)
    fc = predictor.predict(df)
    q = fc[["yhat_q10", "yhat_q50", "yhat_q90"]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all() and (q > 0).all()
    assert (fc["yhat"] == fc["yhat_q50"]).all()
    last = df.groupby("unique_id")["y"].last().to_numpy()
    ratio = fc.groupby("unique_id")["yhat"].mean().to_numpy() / last
    assert ((ratio > 0.5) & (ratio < 2)).all()  # in the data's units, not log units
    again = Predictor.load(predictor.save(tmp_path / "bundle"))
    pd.testing.assert_frame_equal(again.predict(df), fc)


def test_the_pipeline_scores_and_serves_in_the_data_units(retail_csv):
    """features.target_transform reaches the served model: holdout scores are in the data's
    units (seasonal naive scores the same with and without a transform) and the saved
    predictor carries the lambdas."""
    from deepcast.features.schema import ColumnSpec, coerce_long_frame, sort_long_frame
    from deepcast.pipelines.config import ENTRY_MODELS, parse_config
    from deepcast.pipelines.modelling import evaluate, fit_model, prepare, training_settings
    from tests.conftest import pipeline_dict

    raw = pd.read_csv(retail_csv)
    df = sort_long_frame(coerce_long_frame(raw, ColumnSpec("unique_id", "ds", "y", "MS"))[
        ["unique_id", "ds", "y"]])
    scores = {}
    for kind in ("none", "boxcox"):
        cfg = parse_config(pipeline_dict(retail_csv, features={
            "lookback": 24, "horizon": 6, "target_transform": kind}))
        prep = prepare(df, cfg)
        predictor, _, _ = fit_model(ENTRY_MODELS["seasonal_naive"](type="seasonal_naive"),
                                    prep, training_settings(cfg))
        scores[kind], _ = evaluate(predictor, prep)
        assert predictor.scaler.target_transform == kind
    assert scores["boxcox"]["mase"] == pytest.approx(scores["none"]["mase"], rel=1e-4)
    assert len(predictor.scaler.lambdas_) == prep.panel.n_series
    with pytest.raises(Exception, match="target_transform"):
        parse_config(pipeline_dict(retail_csv, features={"lookback": 24, "horizon": 6,
                                                         "target_transform": "sqrt"}))
