"""What a run tells MLflow about its data (metadata only) and its leaderboard description."""

from __future__ import annotations

import pandas as pd

from deepcast.pipelines.runs.store import leaderboard_markdown
from deepcast.pipelines.tracking.datasets import DIGEST_CHARS, run_datasets


def frame() -> pd.DataFrame:
    ds = pd.date_range("2020-01-01", periods=5, freq="D")
    return pd.DataFrame({"unique_id": ["a"] * 5 + ["b"] * 3,
                         "ds": list(ds) + list(ds[2:]),
                         "y": [1.0, 2, 3, 4, 5, 6, 7, 8]})


def test_a_train_run_has_a_training_span_and_a_holdout():
    train, holdout = run_datasets(frame(), "shop", "data/shop.csv", "ab" * 32, test_size=2)
    assert (train.name, train.context, holdout.name, holdout.context) == (
        "shop", "training", "shop.holdout", "holdout")
    assert train.digest == holdout.digest == ("ab" * 32)[:DIGEST_CHARS]
    assert train.profile == {"num_rows": 4, "num_series": 2, "start": "2020-01-01 00:00:00",
                             "end": "2020-01-03 00:00:00"}
    assert holdout.profile == {"num_rows": 4, "num_series": 2, "start": "2020-01-04 00:00:00",
                               "end": "2020-01-05 00:00:00"}
    assert dict(train.columns) == {"unique_id": "string", "ds": "datetime", "y": "double"}


def test_a_backtest_run_has_the_whole_frame_and_mlflow_reads_it_back():
    (whole,) = run_datasets(frame(), "shop", "sql:sales", "cd" * 32, test_size=None)
    assert whole.context == "backtest" and whole.profile["num_rows"] == 8
    entity = whole.to_mlflow()._to_mlflow_entity()
    assert (entity.name, entity.digest, entity.source_type) == ("shop", "cd" * 8, "deepcast")
    assert '"sql:sales"' in entity.source and '"num_series": 2' in entity.profile
    assert '"ds"' in entity.schema


def test_the_description_is_a_markdown_leaderboard_best_first():
    table = pd.DataFrame({"model": ["naive", "mlp|x"], "type": ["naive", "mlp"],
                          "mase": [1.2, 0.81234], "skill_mase": [-0.2, 0.19],
                          "epochs": [0, 5]})
    text = leaderboard_markdown(table, "mase").splitlines()
    assert text[2] == "| model | type | mase | skill_mase | epochs |"
    assert text[4].startswith("| mlp\\|x | mlp | 0.8123 |") and text[5].startswith("| naive")
