"""Warm start in the nightly loop on a real SQLite MLflow store (the Python API, no
Prefect): a first night cold for want of a source, a warm night from a registered version
(fewer epochs, lineage on every model run, a new series added to an ID embedding), the
periodic cold night, a model whose options changed starting cold on its own, and a typo'd
version refused."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

import deepcast
from tests.conftest import pipeline_dict

pytestmark = pytest.mark.integration

NEURAL = [{"type": "mlp", "hidden_size": 16}, {"type": "linear"}]


def _night(path, warm, models=NEURAL, **training):
    cfg = pipeline_dict(path, name="it-warm", models=[{"type": "seasonal_naive"}, *models],
                        features={"lookback": 24, "horizon": 6, "id_embedding": 2},
                        training={"max_epochs": 6, "patience": 6, "batch_size": 32,
                                  "seed": 0, "warm_start": warm, "warm_start_epochs": 2,
                                  **training},
                        evaluation={"test_size": 6, "metric": "mase", "plots": False,
                                    "backtest": {"n_windows": 2}})
    return deepcast.train(cfg)


def _rows(result) -> dict[str, dict]:
    return {row["model"]: row for row in result.table}


def _model_tags(parent_run_id: str) -> dict[str, dict[str, str]]:
    runs = mlflow.search_runs(experiment_names=["it-warm"], output_format="list",
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return {r.info.run_name: r.data.tags for r in runs}


def test_nightly_warm_start(store, tmp_path, retail_csv):
    full = pd.read_csv(retail_csv)
    last = sorted(full["unique_id"].unique())[-1]
    path = tmp_path / "retail.csv"
    full[full["unique_id"] != last].to_csv(path, index=False)

    # night 1: nothing registered yet -> every neural model cold, the run says why
    one = _night(path, "champion")
    rows = _rows(one)
    assert rows["mlp"]["start"] == rows["linear"]["start"] == "cold"
    assert rows["seasonal_naive"]["start"] == ""
    assert any("training.warm_start: cold start: no 'champion' version yet; 0 of 2" in n
               for n in one.notes), one.notes
    assert rows["mlp"]["epochs"] == 6

    # night 2: one more series; both start from version 1 and fit at most 2 epochs; the ID
    # embedding grows to the new series
    full.to_csv(path, index=False)
    two = _night(path, "1")
    rows = _rows(two)
    assert rows["mlp"]["start"] == rows["linear"]["start"] == "warm"
    assert rows["mlp"]["epochs"] <= 2 and rows["linear"]["epochs"] <= 2
    assert two.n_series == 6
    assert any("warm start from v1; 2 of 2" in n for n in two.notes), two.notes
    tags = _model_tags(two.parent_run_id)
    for name in ("mlp", "linear"):
        assert tags[name]["deepcast.warm_start"] == "warm"
        assert tags[name]["deepcast.warm_start_from"] == "1"
        assert tags[name]["deepcast.warm_start_run"] == one.parent_run_id
    parent = mlflow.get_run(two.parent_run_id).data.tags
    assert parent["deepcast.warm_nights"] == "1"
    # the selection backtest's fits are night 1's own selection fits (the champion saw
    # tonight's backtest windows; they did not), used as they are (no epochs by default)
    for name in ("mlp", "linear"):
        assert tags[name]["deepcast.warm_start_selection"] == "warm", tags[name]
        assert "v1's selection fit, used as it is" in \
            tags[name]["deepcast.warm_start_selection_note"]

    # night 3: version 2 was a warm night; cold_every: 2 makes this one cold
    three = _night(path, "2", cold_every=2)
    assert {r["start"] for r in three.table if r["start"]} == {"cold"}
    assert any("periodic cold retrain (cold_every: 2; 1 warm nights in a row before)" in n
               for n in three.notes), three.notes
    assert mlflow.get_run(three.parent_run_id).data.tags["deepcast.warm_nights"] == "0"

    # night 4: the MLP's width changed -> it starts cold on its own, the linear one warm
    four = _night(path, "2", models=[{"type": "mlp", "hidden_size": 32}, {"type": "linear"}])
    rows = _rows(four)
    assert rows["mlp"]["start"] == "cold" and rows["linear"]["start"] == "warm"
    assert "mlp: cold start: options changed: hidden_size 16 -> 32" in four.notes
    assert _model_tags(four.parent_run_id)["mlp"]["deepcast.warm_start_note"] == \
        "cold start: options changed: hidden_size 16 -> 32"

    # night 5: the data ends 6 steps earlier (a backfill): version 2's fits saw points
    # after tonight's training span, so both of tonight's fits of each model start cold
    full.groupby("unique_id").head(len(full) // 6 - 6).to_csv(path, index=False)
    five = _night(path, "2")
    tags = _model_tags(five.parent_run_id)["linear"]
    assert tags["deepcast.warm_start"] == tags["deepcast.warm_start_selection"] == "cold"
    for key in ("deepcast.warm_start_note", "deepcast.warm_start_selection_note"):
        assert "was trained on data after tonight's training span" in tags[key], tags[key]

    # night 6 without warm start, night 7 with it: a run trained with warm start off still
    # records what it saw, so turning it on starts from it (before: "does not record the
    # data it was trained on", and every night stayed cold)
    linear = [{"type": "linear"}]  # one network is enough here (the suite's time)
    six = _night(path, None, models=linear)
    seven = _night(path, six.decision.candidate_version, models=linear)
    assert {r["start"] for r in seven.table if r["start"]} == {"warm"}, seven.notes

    # a version that does not exist is a typo, not a first night
    with pytest.raises(deepcast.ConfigError, match="99"):
        _night(path, "99")
