"""Selection on several windows (the default, ``evaluation.selection: backtest``): every
model is backtested inside the training span, chosen on the mean of its per-window scores
with the holdout's origins, and its conformal bands are calibrated on all those residuals;
on a real SQLite MLflow store."""

from __future__ import annotations

import numpy as np
import pytest

from deepcast.forecasting.crossval import ensemble_backtest
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.ingest import ingest
from deepcast.pipelines.modelling import calibrate_on_holdout, holdout_predictions, prepare
from deepcast.pipelines.selection import selection_windows
from deepcast.pipelines.tracking import Tracker
from deepcast.pipelines.train import train_models
from deepcast.pipelines.validate import validate_long_frame
from tests.conftest import pipeline_dict

pytestmark = pytest.mark.integration


def _train(raw: dict, windows: int):
    """(config, validated frame, train outcome) of ``raw``, whose selection has
    ``windows`` backtest windows."""
    cfg = parse_config(raw)
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    assert selection_windows(prepare(clean, cfg), cfg) == windows
    tracker = Tracker(cfg.name)
    with tracker.run(f"train-{cfg.name}"):
        return cfg, clean, train_models(clean, cfg, tracker, data_sha256="x")


def test_choice_and_bands_rest_on_backtest_windows_and_the_holdout(store, retail_csv):
    from mlflow.tracking import MlflowClient

    raw = pipeline_dict(
        retail_csv, name="it-select",
        models=[{"type": "naive"}, {"type": "seasonal_naive"}, {"type": "linear"}],
        ensemble=[{"name": "avg", "method": "mean", "members": ["naive", "linear"]},
                  {"name": "pick", "method": "greedy",
                   "members": ["naive", "seasonal_naive", "linear"]}])
    # the README's thin setting: holdout = one horizon (6 series x 1 origin)
    raw["evaluation"] = {"test_size": 6, "metric": "mase", "plots": False,
                         "conformal": [80, 95]}
    # 96 points, holdout 6: two seasons of step 6 = 4 windows, and the first cut-off
    # leaves 66 >= lookback + horizon + validation = 36 points
    cfg, clean, outcome = _train(raw, windows=4)

    assert outcome.selection_windows == 4
    by_name = {m.name: m for m in outcome.models}
    for m in outcome.models:
        assert len(m.backtest_scores) == 4 and len(m.window_scores) == 1, m.name
        assert m.selection_score("mase") == pytest.approx(
            np.mean([*m.backtest_scores, *m.window_scores]))
    assert outcome.best.name == min(outcome.models,
                                    key=lambda m: m.selection_score("mase")).name
    table = outcome.table().set_index("model")
    assert (table["windows"] == 5).all() and table["select_mase"].notna().all()
    assert any("chosen on select_mase: the mean over 4 backtest windows" in n
               for n in outcome.notes())

    # the ensembles' backtests are their members' (greedy: weights cross-fitted)
    members = [by_name[n].backtest for n in ("naive", "seasonal_naive", "linear")]
    assert np.allclose(by_name["pick"].backtest.f, ensemble_backtest("greedy", members).f)
    assert np.allclose(by_name["avg"].backtest.f,
                       (members[0].f + members[2].f) / 2)

    # 95 % needs 19 residuals per step: the holdout alone has 6, with the backtest 30
    linear = by_name["linear"]
    assert set(linear.predictor.conformal) == {"80", "95"}
    assert not linear.predictor.conformal_notes
    prep = prepare(clean, cfg)
    holdout_only = calibrate_on_holdout(holdout_predictions(linear.predictor, prep),
                                        prep.require_holdout(), [80, 95], 6)
    assert "95" in holdout_only.left_out

    client = MlflowClient(store)
    history = client.get_metric_history(linear.run_id, "backtest_mase_by_window")
    assert [h.value for h in sorted(history, key=lambda h: h.step)] == pytest.approx(
        list(linear.backtest_scores))
    run = client.get_run(linear.run_id)
    assert run.data.metrics["select_mase"] == pytest.approx(linear.selection_score("mase"))


def test_too_short_a_training_span_falls_back_to_the_holdout(store, retail_csv):
    """With no room for a backtest window, the choice rests on the holdout and says so."""
    raw = pipeline_dict(retail_csv, name="it-select-short",
                        models=[{"type": "naive"}, {"type": "seasonal_naive"}])
    raw["features"] = {"lookback": 24, "horizon": 6}
    raw["evaluation"] = {"test_size": 78, "metric": "mase", "plots": False}
    _, _, outcome = _train(raw, windows=0)
    assert outcome.selection_windows == 0
    assert all(m.backtest is None and not m.backtest_scores for m in outcome.models)
    best = outcome.best
    assert best.selection_score("mase") == pytest.approx(np.mean(best.window_scores))
    assert not any("chosen on select_mase" in n for n in outcome.notes())
