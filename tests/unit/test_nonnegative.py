"""``data.nonnegative``: forecasts, quantiles and conformal bands floored at 0 for data that
is never negative ('auto' decides on the training span), carried in the saved model."""

import json

import numpy as np
import pandas as pd

from deepcast.features.schema import ColumnSpec, coerce_long_frame, sort_long_frame
from deepcast.features.windows import panel_from_frame
from deepcast.forecasting.predictor import BUNDLE_FILE, Predictor
from deepcast.pipelines.config import ENTRY_MODELS, parse_config
from deepcast.pipelines.modelling import (
    evaluate,
    fit_model,
    nonnegative,
    prepare,
    training_settings,
)
from tests.conftest import DATA, pipeline_dict


def test_auto_looks_at_the_training_span_only():
    frame = pd.DataFrame({"unique_id": ["a"] * 5 + ["b"] * 4, "ds": [*range(5), *range(4)],
                          "y": [0.0, 1, 2, 3, -5, 4, 0, 2, 1]})
    panel = panel_from_frame(frame)
    assert nonnegative("auto", panel, 1)  # the -5 is in the holdout: not seen
    assert not nonnegative("auto", panel, 0)
    assert nonnegative(True, panel, 0) and not nonnegative(False, panel, 1)


def _counts() -> pd.DataFrame:
    """Intermittent counts: mostly zero, a few spikes (what gave bands down to -3,750)."""
    rng = np.random.default_rng(3)
    n = 60
    y = rng.poisson(0.3, size=(4, n)) * rng.integers(1, 50, size=(4, n))
    ds = pd.date_range("2020-01-01", periods=n, freq="MS")
    return pd.DataFrame({"unique_id": np.repeat(list("abcd"), n), "ds": np.tile(ds, 4),
                         "y": y.ravel().astype(float)})


def _model(setting, tmp_path):
    raw = pipeline_dict(DATA / "aus_retail_small.csv", evaluation={
        "test_size": 24, "metric": "mae", "plots": False, "conformal": [80]})
    raw["data"]["nonnegative"] = setting
    cfg = parse_config(raw)
    df = sort_long_frame(coerce_long_frame(_counts(), ColumnSpec("unique_id", "ds", "y", "MS"))
                         [["unique_id", "ds", "y"]])
    prep = prepare(df, cfg)
    predictor, _, _ = fit_model(ENTRY_MODELS["drift"](type="drift"), prep,
                                training_settings(cfg))
    evaluate(predictor, prep, cfg.evaluation.conformal)
    return predictor, df


def test_bands_of_count_data_stay_at_or_above_zero(tmp_path):
    off, df = _model(False, tmp_path)
    raw = off.predict(df)
    assert (raw["yhat_lo_80"] < 0).any()  # what a drift model's band does on counts
    on, _ = _model("auto", tmp_path)
    fc = on.predict(df)
    values = [c for c in fc.columns if c.startswith("yhat")]
    assert (fc[values] >= 0).all().all()
    # the point forecast is the unfloored one floored (the bands differ a little more:
    # they are calibrated on the floored holdout forecasts' residuals)
    np.testing.assert_allclose(fc["yhat"], np.maximum(raw["yhat"], 0.0))
    # saved with the model; a bundle from before the setting existed loads with it off
    loaded = Predictor.load(on.save(tmp_path / "bundle"))
    assert loaded.nonnegative and (loaded.predict(df)[values] >= 0).all().all()
    meta = json.loads((tmp_path / "bundle" / BUNDLE_FILE).read_text())
    del meta["nonnegative"]
    (tmp_path / "bundle" / BUNDLE_FILE).write_text(json.dumps(meta))
    assert not Predictor.load(tmp_path / "bundle").nonnegative
