"""Ensembles trained, scored, logged and served like models, on a real SQLite store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepcast.pipelines.config import parse_config
from deepcast.pipelines.ensembles import member_backtest
from deepcast.pipelines.ingest import ingest
from deepcast.pipelines.modelling import prepare
from deepcast.pipelines.tracking import Tracker
from deepcast.pipelines.train import train_models
from deepcast.pipelines.validate import validate_long_frame
from tests.conftest import pipeline_dict

pytestmark = pytest.mark.integration


def _cfg(retail_csv):
    raw = pipeline_dict(
        retail_csv, name="it-ens",
        models=[{"type": "seasonal_naive"}, {"type": "linear"},
                {"type": "mlp", "hidden_size": 16}],
        ensemble=[
            {"name": "avg", "method": "mean", "members": ["linear", "mlp"]},
            {"name": "med", "method": "median", "members": ["seasonal_naive", "linear",
                                                            "mlp"]},
            {"name": "wtd", "method": "weighted", "members": ["seasonal_naive", "linear",
                                                              "mlp"]},
            {"name": "stack", "method": "stacking", "members": ["seasonal_naive", "linear",
                                                                 "mlp"]},
            {"name": "bag", "method": "bagging", "n_members": 2,
             "model": {"type": "mlp", "hidden_size": 16}},
        ],
        training={"max_epochs": 3, "patience": 2, "batch_size": 32, "seed": 0})
    raw["evaluation"] = {"test_size": 6, "backtest": {"n_windows": 2, "step": 6}}
    cfg = parse_config(raw)
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    return cfg, clean


def test_ensembles_are_models(store, retail_csv):
    import mlflow.pyfunc

    cfg, clean = _cfg(retail_csv)
    tracker = Tracker(cfg.name)
    with tracker.run("train-it-ens"):
        outcome = train_models(clean, cfg, tracker, data_sha256="x")
    table = outcome.table().set_index("model")
    assert {"avg", "med", "wtd", "stack", "bag"} <= set(table.index)
    assert np.isfinite(table["mase"]).all()
    stack = next(m for m in outcome.models if m.name == "stack")
    weights = np.array(stack.predictor.forecaster.options["weights"])
    assert weights.shape == (6, 3) and np.allclose(weights.sum(axis=1), 1.0)
    bag = next(m for m in outcome.models if m.name == "bag")
    assert len(bag.predictor.forecaster.members) == 2
    # served through the same pyfunc contract, members and weights included
    model = mlflow.pyfunc.load_model(stack.model_uri)
    history = clean[["unique_id", "ds", "y"]]
    fc = model.predict(history)
    direct = stack.predictor.predict(history)
    np.testing.assert_allclose(fc["yhat"], direct["yhat"], rtol=1e-6)


def test_member_backtest_never_sees_the_holdout(retail_csv):
    cfg, clean = _cfg(retail_csv)
    entries = [m for m in cfg.models if m.label in ("seasonal_naive", "linear")]
    y1, f1, s1 = member_backtest(entries, prepare(clean, cfg), cfg)
    changed = clean.copy()
    last = changed.groupby("unique_id").cumcount(ascending=False) < cfg.evaluation.test_size
    changed.loc[last, "y"] *= 100.0
    y2, f2, s2 = member_backtest(entries, prepare(changed, cfg), cfg)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(f1, f2, rtol=1e-6)
    assert pd.isna(s1).sum() == 0


def _train_auto(retail_csv, **auto):
    raw = pipeline_dict(retail_csv, name="it-auto", models="auto", features={"horizon": 6},
                        auto=auto)
    raw["evaluation"] = {"test_size": 12, "plots": False,
                         "backtest": {"n_windows": 2, "step": 6}}
    cfg = parse_config(raw)
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    tracker = Tracker(cfg.name)
    with tracker.run("train-it-auto") as run_id:
        outcome = train_models(clean, cfg, tracker, data_sha256="x")
    return outcome, tracker.client.get_run(run_id)


def test_models_auto_trains_the_preset_and_its_greedy_ensemble(store, retail_csv):
    """``models: auto`` trains the preset and the greedy ensemble ``auto`` of all of it:
    convex weights (a combination's MASE is at most its worst member's), served like any
    model. With the time limit spent, the neural models are skipped and named; the
    ensemble keeps the baselines that were trained."""
    outcome, _ = _train_auto(retail_csv)
    table = outcome.table().set_index("model")
    assert {"naive", "seasonal_naive", "drift", "theta", "linear", "mlp", "nhits",
            "auto"} == set(table.index)
    auto = next(m for m in outcome.models if m.name == "auto")
    weights = np.array(auto.predictor.forecaster.options["weights"])
    assert weights.shape == (6, 7) and np.allclose(weights.sum(axis=1), 1.0)
    assert (weights >= 0).all()
    assert table.loc["auto", "mase"] <= table.drop("auto")["mase"].max() + 1e-9
    assert not outcome.skipped and not any("time_limit" in n for n in outcome.notes())
    # what the scores rest on: 2 origins of 6 steps; the spread over them, per model
    assert outcome.notes()[0].startswith("the holdout scores rest on 2 forecast origins per "
                                         "series (6 series x 12 points = 72 points")
    assert all(len(m.window_scores) == 2 for m in outcome.models)
    assert table["mase_sd"].notna().all()
    mlp = next(m for m in outcome.models if m.name == "mlp")
    assert np.mean(mlp.window_scores) == pytest.approx(mlp.metrics["mase"], rel=1e-9)
    history = Tracker("it-auto").client.get_metric_history(mlp.run_id,
                                                           "holdout_mase_by_origin")
    assert [h.step for h in history] == [0, 1]

    outcome, run = _train_auto(retail_csv, time_limit=1e-6)
    assert outcome.skipped == ("theta", "linear", "mlp", "nhits")
    auto = next(m for m in outcome.models if m.name == "auto")
    assert len(auto.predictor.forecaster.members) == 3
    assert any("auto.time_limit" in n and "theta, linear, mlp, nhits" in n
               for n in outcome.notes())
    assert run.data.tags["deepcast.skipped_models"] == "theta, linear, mlp, nhits"
