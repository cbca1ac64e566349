"""Plots logged by ``train`` and the HTML forecast report, on a real MLflow store and the
Prefect harness: the report names the served version and its training data (read back from
the runs) and is self-contained."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from deepcast.features.errors import ConfigError
from deepcast.flows.flows import batch_forecast, train_pipeline
from deepcast.pipelines.tracking import Tracker
from tests.integration.conftest import write_pipeline

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"


def _artifacts(tracker: Tracker, run_id: str, folder: str) -> set[str]:
    return {a.path for a in tracker.client.list_artifacts(run_id, folder)}


@pytest.mark.slow
def test_train_logs_plots_and_forecast_writes_a_self_contained_report(
        prefect_harness, store, tmp_path, retail_csv):
    pipeline = write_pipeline(
        tmp_path, retail_csv, name="it-report",
        models=[{"type": "naive"}, {"type": "seasonal_naive"},
                {"type": "mlp", "hidden_size": 16, "quantiles": [0.1, 0.9]}],
        evaluation={"test_size": 12, "metric": "mase", "conformal": [80]})
    summary = train_pipeline(pipeline=str(pipeline))
    tracker = Tracker("it-report")
    parent = summary.parent_run_id
    assert _artifacts(tracker, parent, "plots") == {"plots/skill_vs_seasonal_naive.png"}
    children = {r.info.run_name: r.info.run_id for r in tracker.client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")}
    assert set(children) == {"naive", "seasonal_naive", "mlp"}
    for name, run_id in children.items():
        expected = {"plots/series.png", "plots/error_by_horizon.png"}
        if name == "mlp":  # the only model with a training loss curve
            expected.add("plots/loss.png")
        assert _artifacts(tracker, run_id, "plots") == expected, name
    png = tracker.client.download_artifacts(children["mlp"], "plots/series.png", str(tmp_path))
    assert open(png, "rb").read(8) == PNG

    # the report: served version, training data read back from the runs, chosen series
    ids = sorted(pd.read_csv(retail_csv)["unique_id"].unique())
    chosen = [ids[-1], ids[2]]
    out = batch_forecast(pipeline=str(pipeline), output=str(tmp_path / "f.csv"),
                         report=str(tmp_path / "r.html"), series=chosen)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    version = tracker.registry.resolve("champion")
    run = tracker.client.get_run(parent)
    assert out.report == str(tmp_path / "r.html")
    assert f"version {version.version}" in text and "champion" in text
    assert out.model_name in text and run.data.tags["deepcast.data_sha256"] in text
    assert "2011-01-01 → 2018-12-01" in text  # the training data's date range
    assert all(f"{uid} (chosen)" not in text for uid in chosen)  # titles live in the PNG
    for uid in chosen:
        assert f'<td class="l">{uid}</td>' in text
    assert "seasonal naive" in text and "2019-06-01" in text
    # self-contained: no script, no link or source outside the file itself
    assert "<script" not in text.lower() and not re.search(r"https?://", text)
    assert set(re.findall(r'(?:src|href)="([a-z]+):', text)) == {"data"}
    assert not list(tmp_path.glob(".r.html.*"))  # no temp file left behind

    with pytest.raises(ConfigError, match="1 series not in the data: NOPE"):
        batch_forecast(pipeline=str(pipeline), output=str(tmp_path / "g.csv"),
                       report=str(tmp_path / "s.html"), series=["NOPE"])
    assert not (tmp_path / "g.csv").exists() and not (tmp_path / "s.html").exists()
