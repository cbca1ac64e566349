"""The statistical families (ets, theta, arima): the pipeline's scaling is undone before the
library fits (so deepcast's forecast equals the library's own on the raw series), whole
histories reach them, failures fall back visibly, the pool equals the serial loop, and they
mix with global models in an ensemble."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import ConfigError
from deepcast.features.schema import ColumnSpec, coerce_long_frame, sort_long_frame
from deepcast.forecasting import statistical
from deepcast.forecasting.base import WindowSpec
from deepcast.forecasting.ensemble import build_ensemble
from deepcast.forecasting.models import build_forecaster, load_forecaster
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines.config import ENTRY_MODELS, parse_config
from deepcast.pipelines.modelling import fit_model, prepare, training_settings
from tests.conftest import DATA, pipeline_dict


@pytest.fixture(scope="module")
def retail():
    cfg = parse_config(pipeline_dict(DATA / "aus_retail_small.csv",
                                     features={"lookback": 24, "horizon": 6}))
    raw = pd.read_csv(cfg.data.path)
    df = sort_long_frame(coerce_long_frame(raw, ColumnSpec("unique_id", "ds", "y", "MS"))[
        ["unique_id", "ds", "y"]])
    df = df[df["unique_id"].isin(df["unique_id"].unique()[:2])].reset_index(drop=True)
    return cfg, df, prepare(df, cfg)


def _fit(family, cfg, prep, **options) -> Predictor:
    predictor, _, _ = fit_model(ENTRY_MODELS[family](type=family, **options), prep,
                                training_settings(cfg))
    return predictor


@pytest.mark.parametrize("family,options,direct", [
    ("ets", {}, lambda y: statistical.ets(y, 6, 12)),
    ("theta", {}, lambda y: statistical.theta(y, 6, 12)),
    ("arima", {"seasonal": False}, lambda y: statistical.arima(y, 6, 12, seasonal=False)),
])
def test_forecast_is_the_library_fit_on_the_raw_series(retail, family, options, direct):
    cfg, df, prep = retail
    predictor = _fit(family, cfg, prep, **options)
    # the whole history reaches the model, not the 24-point lookback of the networks
    assert predictor.lookback == int(prep.panel.lengths.max()) > 24
    assert predictor.min_history == (prep.min_history or 24)
    fc = predictor.predict(df)
    for sid, part in df.groupby("unique_id"):
        expected = direct(part["y"].to_numpy(np.float64))
        got = fc.loc[fc["unique_id"] == sid, "yhat"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert predictor.forecaster.notes() == []


def test_multiplicative_models_see_the_positive_level(retail):
    """Standard scaling makes every series cross zero; ETS still chooses among
    multiplicative models because it fits the unscaled values."""
    cfg, df, prep = retail
    predictor = _fit("ets", cfg, prep, model="MNM")
    y = df.loc[df["unique_id"] == df["unique_id"].iloc[0], "y"].to_numpy(np.float64)
    np.testing.assert_allclose(predictor.predict(df)["yhat"].to_numpy()[:6],
                               statistical.ets(y, 6, 12, model="MNM"), rtol=1e-6)


def test_backtest_windows_fit_each_cutoff_on_its_own_history(retail):
    cfg, df, prep = retail
    predictor = _fit("theta", cfg, prep)
    n = prep.panel.lengths
    cuts = np.stack([n - 12, n - 6], axis=1)
    fc = predictor.predict_windows(df, cuts)
    first = df[df["unique_id"] == df["unique_id"].iloc[0]]["y"].to_numpy(np.float64)
    rows = fc[(fc["unique_id"] == fc["unique_id"].iloc[0]) & (fc["window"] == 0)]
    np.testing.assert_allclose(rows["yhat"], statistical.theta(first[: n[0] - 12], 6, 12),
                               rtol=1e-6)


def test_failed_fits_fall_back_to_seasonal_naive_and_say_so():
    f = build_forecaster("ets", "ets", WindowSpec(8, 3, 2), {"n_jobs": 1})
    x = np.array([[np.nan] * 6 + [1.0, 2.0], np.arange(1.0, 9.0)])
    yhat = f.predict(x)
    np.testing.assert_array_equal(yhat[0], [1.0, 2.0, 1.0])  # too short: last season
    assert f.fallbacks == 1 and "1 of 2 series fell back" in f.notes()[0]


def test_parallel_fits_equal_the_serial_loop():
    rng = np.random.default_rng(0)
    t = np.arange(60)
    x = 10 + np.sin(2 * np.pi * t / 12)[None, :] + rng.normal(0, 0.3, (20, 60))
    spec = WindowSpec(60, 6, 12)
    serial = build_forecaster("theta", "t", spec, {"n_jobs": 1}).predict(x)
    pooled = build_forecaster("theta", "t", spec, {"n_jobs": 2}).predict(x)
    np.testing.assert_allclose(pooled, serial, rtol=1e-9)


def test_a_dask_worker_fits_in_its_own_process(monkeypatch):
    """Daemonic processes (Dask workers) may not start a pool: the fits run serially there,
    with the same result and no warning."""
    import multiprocessing
    import warnings

    x = [10 + np.sin(np.arange(60) / 2) + i for i in range(20)]
    serial = statistical.forecast_many("theta", x, 6, 12, {}, n_jobs=1).yhat
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started in a daemonic process")

    monkeypatch.setattr("joblib.Parallel", no_pool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            statistical.forecast_many("theta", x, 6, 12, {}, n_jobs=2).yhat, serial)


def test_saved_model_holds_options_only_and_forecasts_the_same(retail, tmp_path):
    cfg, df, prep = retail
    predictor = _fit("theta", cfg, prep)
    predictor.save(tmp_path / "bundle")
    files = sorted(p.name for p in (tmp_path / "bundle" / "forecaster").iterdir())
    assert files == ["forecaster.json"]
    again = Predictor.load(tmp_path / "bundle")
    pd.testing.assert_frame_equal(again.predict(df), predictor.predict(df))
    assert load_forecaster(tmp_path / "bundle" / "forecaster").spec.lookback == \
        predictor.lookback


def test_ensemble_of_a_local_and_a_windowed_model(retail):
    """Members keep their own windows: the ensemble's is the longest, the seasonal naive
    member reads the last 24 points of it."""
    cfg, df, prep = retail
    theta, snaive = _fit("theta", cfg, prep), _fit("seasonal_naive", cfg, prep)
    ensemble = prep.predictor(build_ensemble("both", "mean", [theta.forecaster,
                                                               snaive.forecaster]))
    assert ensemble.lookback == theta.lookback
    expected = (theta.predict(df)["yhat"] + snaive.predict(df)["yhat"]) / 2
    np.testing.assert_allclose(ensemble.predict(df)["yhat"], expected, rtol=1e-9)


def test_bad_ets_model_string_is_a_config_error():
    with pytest.raises(ConfigError, match="model"):
        parse_config(pipeline_dict(DATA / "aus_retail_small.csv",
                                   models=[{"type": "ets", "model": "AMX"}]))


def test_season_length_list_sets_every_period_and_keeps_the_first_as_main():
    cfg = parse_config(pipeline_dict(DATA / "aus_retail_small.csv",
                                     data={"path": str(DATA / "aus_retail_small.csv"),
                                           "freq": "MS", "season_length": [12, 6]}))
    assert cfg.data.season_length == 12 and cfg.data.seasonalities == [12, 6]
    again = parse_config({**pipeline_dict(DATA / "aus_retail_small.csv"),
                          "data": cfg.data.model_dump(mode="json")})  # a dumped config
    assert again.data.seasonalities == [12, 6]
    for bad in ([], [12, 12], [12, 0], [12, 1.5]):
        with pytest.raises(ConfigError, match="season_length"):
            parse_config(pipeline_dict(DATA / "aus_retail_small.csv", data={
                "path": str(DATA / "aus_retail_small.csv"), "freq": "MS",
                "season_length": bad}))


def test_two_seasons_are_both_modelled():
    """Hourly data with a daily and a weekly cycle: with both periods (MSTL, then ETS on
    the adjusted series) the forecast follows the weekly shape that season 24 alone
    misses."""
    rng = np.random.default_rng(1)
    t = np.arange(24 * 7 * 6 + 48)
    y = 50 + 5 * np.sin(2 * np.pi * t / 24) + 8 * (t % 168 >= 120) + rng.normal(0, 0.5,
                                                                               len(t))
    history, truth = y[:-48], y[-48:]
    one = build_forecaster("ets", "e", WindowSpec(len(history), 48, 24), {"n_jobs": 1})
    both = build_forecaster("ets", "e", WindowSpec(len(history), 48, 24, (24, 168)),
                            {"n_jobs": 1})
    err_one = np.abs(one.predict(history[None, :])[0] - truth).mean()
    err_both = np.abs(both.predict(history[None, :])[0] - truth).mean()
    assert err_both < 0.5 * err_one and both.notes() == []
