"""Quality pinned per family: holdout MASE on a small real panel (6 aus_retail series, last
6 months held out) must not exceed the table. A modelling regression (a broken window, a
mis-scaled head, a lost instance norm) moves these numbers and fails here. Values were
measured with the settings below (seeded, CPU, oneDNN off) and given ~10 % headroom."""

import pandas as pd
import pytest

from deepcast.features.schema import ColumnSpec, coerce_long_frame, sort_long_frame
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.modelling import evaluate, fit_model, prepare, training_settings
from tests.conftest import DATA, pipeline_dict

MAX_MASE = {  # measured: naive 2.0576, seasonal_naive 0.9430, mean 1.8852, drift 1.9215,
    # linear 0.9266, mlp 0.6189, cnn 0.6501, rnn 0.5726, lstm 1.2012, gru 1.1393,
    # transformer 0.6493, nhits 0.8889, nbeats 0.6363, tide 0.8209, tsmixer 0.8043,
    # deepar 1.1696 (recurrent families are weak on this panel: lstm, gru), ets 0.5768,
    # theta 0.7506, tft 0.6376 (0.6388 before its selection networks became one layer
    # each, 6 Dec; 0.7357 before dropout masks came from a hash, 6 Dec;
    # 0.6980 before its blocks became single layers, 5 Dec:
    # another draw of the same initialisation)
    "naive": 2.06, "seasonal_naive": 0.95, "mean": 1.89, "drift": 1.93,
    "linear": 1.02, "mlp": 0.69, "cnn": 0.72, "rnn": 0.63, "lstm": 1.33, "gru": 1.26,
    "transformer": 0.72, "nhits": 0.98, "nbeats": 0.70, "tide": 0.94,
    "tsmixer": 0.89, "deepar": 1.29, "ets": 0.64, "theta": 0.83, "tft": 0.77,
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def panel():
    cfg = parse_config(pipeline_dict(
        DATA / "aus_retail_small.csv",
        training={"max_epochs": 15, "patience": 3, "batch_size": 32, "seed": 0,
                  "checkpoint": False}))
    raw = pd.read_csv(cfg.data.path)
    df = sort_long_frame(coerce_long_frame(raw, ColumnSpec("unique_id", "ds", "y", "MS"))[
        ["unique_id", "ds", "y"]])
    return cfg, df, prepare(df, cfg)


@pytest.mark.parametrize("family", sorted(MAX_MASE))
def test_family_quality(panel, family):
    from deepcast.pipelines.config import ENTRY_MODELS

    cfg, df, prep = panel
    predictor, _, _ = fit_model(ENTRY_MODELS[family](type=family), prep, training_settings(cfg))
    scores, _ = evaluate(predictor, prep, cfg.evaluation.conformal)
    print(f"{family}: mase {scores['mase']:.4f}")
    assert scores["mase"] <= MAX_MASE[family]
