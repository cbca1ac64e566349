"""Thin evidence named where the user looks (6 series, holdout = one horizon): a conformal
level with too few calibration residuals is left out of the forecast and named in the
train result, the parent run's description, the model's MLflow run, the forecast result,
the CLI's output and the HTML report; scores resting on one origin are said to."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
from mlflow import MlflowClient

import deepcast
from deepcast.flows.commands import _print_forecast
from tests.integration.conftest import write_pipeline

pytestmark = pytest.mark.integration

NOTE = "conformal 95 %: left out (calibrated on the holdout): 6 calibration residuals"


def test_thin_evidence_is_named_in_every_place(store, tmp_path, retail_csv, capsys):
    pipeline = write_pipeline(
        tmp_path, retail_csv, name="few-residuals",
        models=[{"type": "naive"}, {"type": "seasonal_naive"}],
        evaluation={"test_size": 6, "metric": "mase", "plots": False, "conformal": [80, 95],
                    "selection": "holdout"})
    cfg = deepcast.load_config(pipeline)
    trained = deepcast.train(cfg)
    assert sorted(n.split(":")[0] for n in trained.notes if NOTE in n) == [
        "naive", "seasonal_naive"]
    one_origin = trained.notes[0]
    assert one_origin.startswith("the holdout scores, and the choice of the best model, rest "
                                 "on one forecast origin per series")
    client = MlflowClient(store)
    description = client.get_run(trained.parent_run_id).data.tags["mlflow.note.content"]
    assert f"- {one_origin}" in description and f"- naive: {NOTE}" in description
    for row in trained.table:
        run = client.search_runs(
            [client.get_experiment_by_name("few-residuals").experiment_id],
            f"tags.mlflow.runName = '{row['model']}'")[0]
        assert run.data.tags["deepcast.conformal_notes"].startswith(NOTE)

    history = pd.read_csv(retail_csv)
    stale = history["unique_id"].iloc[0]  # ends two years before the others
    history = history.drop(history.index[history["unique_id"] == stale][-24:])
    done = deepcast.forecast(cfg, history=history, report=tmp_path / "report.html")
    assert {"yhat_lo_80", "yhat_hi_80"} <= set(done.forecast.columns)
    assert not {"yhat_lo_95", "yhat_hi_95"} & set(done.forecast.columns)
    warned, left_out = done.notes
    assert warned.startswith("1 of 6 series end more than 12 steps") and str(stale) in warned
    assert left_out.startswith(NOTE)
    page = (tmp_path / "report.html").read_text()
    assert NOTE in page and str(stale) in page and "1 of 6 series end more than" in page

    _print_forecast(argparse.Namespace(quiet=True, model="champion"), done)  # the CLI's
    assert f"note: {NOTE}" in capsys.readouterr().out
