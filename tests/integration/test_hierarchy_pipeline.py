"""A real two-level hierarchy (aus_retail: state x industry) through train and forecast:
every level trained on, forecasts that add up at every level, the served model building
the aggregates itself from bottom-only history; on a real SQLite MLflow store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepcast
from tests.conftest import DATA
from tests.integration.conftest import write_pipeline

pytestmark = pytest.mark.integration

SOURCE = DATA / "aus_retail_hierarchy_small.csv"


def _coherent(fc: pd.DataFrame, bottom: pd.DataFrame) -> None:
    """Every aggregate equals the sum of its bottom series, step by step."""
    parts = bottom.drop_duplicates("unique_id").set_index("unique_id")[["state", "industry"]]
    wide = fc.pivot(index="ds", columns="unique_id", values="yhat")
    ids = list(parts.index)
    assert np.allclose(wide["total"], wide[ids].sum(axis=1))
    for state in parts["state"].unique():
        assert np.allclose(wide[state], wide[list(parts.index[parts["state"] == state])]
                           .sum(axis=1))
    for industry in parts["industry"].unique():
        members = list(parts.index[parts["industry"] == industry])
        assert np.allclose(wide[industry], wide[members].sum(axis=1))


def test_grouped_hierarchy_trains_and_forecasts_coherently(store, tmp_path):
    import mlflow.pyfunc
    from mlflow import MlflowClient

    pipeline = write_pipeline(
        tmp_path, SOURCE, name="it-hier",
        data={"path": SOURCE.name, "freq": "MS", "season_length": 12,
              "static": ["state", "industry"]},
        models=[{"type": "naive"}, {"type": "seasonal_naive"}, {"type": "linear"}],
        hierarchy={"columns": ["state", "industry"],
                   "levels": [[], ["state"], ["industry"]], "method": "min_trace_shrink"},
        evaluation={"test_size": 6, "metric": "mase", "plots": False},
        promotion={"level": "bottom"})
    cfg = deepcast.load_config(pipeline)
    trained = deepcast.train(cfg)
    d = trained.decision
    assert d.promoted
    # the gate scores every level; the bottom one decides (promotion.level: bottom)
    assert d.level == "state/industry" and "level state/industry" in d.gate
    assert list(d.by_level) == ["all", "total", "state", "industry", "state/industry"]
    assert d.candidate_score == d.by_level["state/industry"]["candidate"]
    assert d.seasonal_naive_score == d.by_level["state/industry"]["seasonal_naive"]
    assert d.by_level["all"]["candidate"] != d.candidate_score
    bottom = pd.read_csv(SOURCE, parse_dates=["ds"])
    assert trained.n_series == 1 + 2 + 3 + 6  # total, states, industries, bottom
    # MinT's covariance came from the backtest residuals of every series (no fallback)
    assert not any("wls_struct instead" in n for n in trained.notes)

    client = MlflowClient(store)
    parent = client.get_run(trained.parent_run_id).data
    assert parent.tags["deepcast.promotion.level"] == "state/industry"
    assert parent.metrics["gate_candidate_mase_total"] == d.by_level["total"]["candidate"]
    runs = client.search_runs([client.get_experiment_by_name("it-hier").experiment_id],
                              "tags.mlflow.runName = 'linear'")
    path = client.download_artifacts(runs[0].info.run_id, "holdout/per_level_metrics.csv",
                                     str(tmp_path))
    levels = pd.read_csv(path)
    assert set(levels["level"]) == {"total", "state", "industry", "state/industry"}
    assert dict(zip(levels["level"], levels["series"], strict=True)) == {
        "total": 1, "state": 2, "industry": 3, "state/industry": 6}

    done = deepcast.forecast(cfg, report=tmp_path / "report.html")
    fc = done.forecast
    page = (tmp_path / "report.html").read_text()
    heads = [page.index(f"<h3>{name} ({n} series)</h3>") for name, n in
             (("total", 1), ("state", 2), ("industry", 3), ("state/industry", 6))]
    assert "<h2>Levels</h2>" in page and heads == sorted(heads)  # one figure per level
    assert set(fc["level"]) == {"total", "state", "industry", "state/industry"}
    assert fc["unique_id"].nunique() == 12
    _coherent(fc, bottom)

    # the backtest scores every level, of the forecasts as served: reconciled window by
    # window (MinT's covariance from the errors before each cut-off; none before the first)
    backtest = deepcast.backtest(cfg)
    table = {r["model"]: r for r in backtest.table}
    assert {f"mase_{lv}" for lv in ("total", "state", "industry", "state/industry")} \
        <= set(table["linear"])
    assert [n for n in backtest.notes if "min_trace_shrink" in n] == [
        "1 of 4 backtest windows (the first has none) had too few earlier errors for "
        "min_trace_shrink's covariance and were reconciled with min_trace_wls_struct: "
        "naive, seasonal_naive, linear"], backtest.notes
    runs = client.search_runs(
        [client.get_experiment_by_name("it-hier").experiment_id],
        f"tags.mlflow.runName = 'backtest-linear' and "
        f"tags.mlflow.parentRunId = '{backtest.parent_run_id}'")
    windows = pd.read_csv(client.download_artifacts(runs[0].info.run_id,
                                                    "backtest/forecasts.csv", str(tmp_path)),
                          parse_dates=["ds"])
    for _, window in windows.groupby("window"):
        _coherent(window, bottom)

    # the served model, given the bottom series only, builds the levels and reconciles
    model = mlflow.pyfunc.load_model("models:/it-hier@champion")
    served = model.predict(bottom)
    assert served["unique_id"].nunique() == 12
    _coherent(served, bottom)
    mine = fc.set_index(["unique_id", "ds"])["yhat"]
    theirs = served.set_index(["unique_id", "ds"])["yhat"]
    assert np.allclose(mine.loc[theirs.index], theirs)

    # the next night re-scores the champion at every level; the bottom level decides
    again = deepcast.train(cfg).decision
    assert again.champion_version == d.candidate_version
    assert again.champion_score == again.by_level["state/industry"]["champion"]
    assert all(row["champion"] is not None for row in again.by_level.values())


def test_hierarchy_config_errors_name_the_fix(tmp_path):
    from deepcast.features.errors import ConfigError

    base = {"data": {"path": SOURCE.name, "freq": "MS", "season_length": 12}}
    with pytest.raises(ConfigError, match="list them under data.static"):
        deepcast.load_config(write_pipeline(
            tmp_path, SOURCE, name="h1", **base, hierarchy={"columns": ["state", "industry"]}))
    with pytest.raises(ConfigError, match="top_down needs a nested hierarchy"):
        deepcast.load_config(write_pipeline(
            tmp_path, SOURCE, name="h2", **base,
            hierarchy={"columns": ["state", "industry"], "separator": "|",
                       "levels": [[], ["industry"]], "method": "top_down"}))
    with pytest.raises(ConfigError, match="use one of all, bottom, total, state"):
        deepcast.load_config(write_pipeline(
            tmp_path, SOURCE, name="h3", **base, promotion={"level": "store"},
            hierarchy={"columns": ["state", "industry"], "separator": "|"}))
    with pytest.raises(ConfigError, match="promotion.level: 'bottom' needs a hierarchy"):
        deepcast.load_config(write_pipeline(
            tmp_path, SOURCE, name="h4", **base, promotion={"level": "bottom"}))
