"""Plots logged by ``train`` and the HTML forecast report, on a real MLflow store and the
Prefect harness: the report names the served version and its training data (read back from
the runs) and is self-contained; ``deepcast forecast`` writes the forecast and the report
together (both or neither), shows user text as text and guards CSV cells against formula
injection."""

from __future__ import annotations

import logging
import re
import signal
from pathlib import Path

import pandas as pd
import pytest

import deepcast
from deepcast.features.errors import ConfigError
from deepcast.flows.cli import main
from deepcast.flows.flows import batch_forecast, train_pipeline
from deepcast.pipelines.runs import ForecastOptions
from deepcast.pipelines.tracking import Tracker
from tests.conftest import DATA, mlflow_store
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
                         options=ForecastOptions(report=str(tmp_path / "r.html"),
                                                 series=tuple(chosen)))
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
                       options=ForecastOptions(report=str(tmp_path / "s.html"),
                                               series=("NOPE",)))
    assert not (tmp_path / "g.csv").exists() and not (tmp_path / "s.html").exists()


MATH, FORMULA = "$\\frac{", "=SUM(A1)"  # ids that matplotlib / a spreadsheet would interpret


@pytest.fixture(scope="module")
def odd_ids(prefect_harness, tmp_path_factory) -> Path:
    """A pipeline trained (baselines only) on the retail slice with two series renamed to
    ``$\\frac{`` and ``=SUM(A1)``; its registered version is the ``challenger``."""
    root = tmp_path_factory.mktemp("odd-ids")
    frame = pd.read_csv(DATA / "aus_retail_small.csv")
    first, second = sorted(frame["unique_id"].unique())[:2]
    frame["unique_id"] = frame["unique_id"].replace({first: MATH, second: FORMULA})
    frame.to_csv(root / "odd.csv", index=False)
    (root / "mlruns").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_store(root / "mlruns" / "mlflow.db"))
        mp.chdir(root)
        pipeline = write_pipeline(root, root / "odd.csv", name="it-odd-ids",
                                  models=[{"type": "naive"}, {"type": "seasonal_naive"}],
                                  evaluation={"test_size": 12, "metric": "mase"})
        train_pipeline(pipeline=str(pipeline))
        yield pipeline


def _cli(capsys, *args: str) -> tuple[int, str]:
    """``deepcast ARGS`` in this process (so that a test can patch it): (exit code, stderr);
    the logging and signal set-up of ``main`` is undone afterwards."""
    log = logging.getLogger("deepcast")
    saved = log.handlers[:], log.level, log.propagate, signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    try:
        code = main(list(args))
    finally:
        log.handlers[:], log.level, log.propagate = saved[:3]
        signal.signal(signal.SIGTERM, saved[3])
    return code, capsys.readouterr().err


def test_a_failed_report_leaves_the_last_forecast_and_says_what_failed(
        odd_ids, tmp_path, monkeypatch, capsys):
    """The report fails after the forecast was computed: the previous forecast file is
    byte-identical, no report and no temp file exist, and the message is not empty."""
    out, report = tmp_path / "f.csv", tmp_path / "r.html"
    previous = b"unique_id,ds,yhat\nlast-night,2019-01-01,1.0\n"
    out.write_bytes(previous)

    def broken(*args, **kwargs):
        raise ValueError()

    monkeypatch.setattr("deepcast.pipelines.report.render_report", broken)
    code, err = _cli(capsys, "forecast", str(odd_ids), "--model", "challenger",
                     "--output", str(out), "--report", str(report))
    assert code == 1
    assert out.read_bytes() == previous and not report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]  # no temp file left
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    assert "ValueError()" in line and not line.rstrip().endswith(":"), err


def test_user_text_ids_are_reported_as_text_and_csv_cells_are_guarded(odd_ids, tmp_path,
                                                                       capsys):
    """``$\\frac{`` is plotted and listed as written; ``=SUM(A1)`` gets a leading ``'``
    in the CSV unless --no-formula-guard."""
    out, report = tmp_path / "f.csv", tmp_path / "r.html"
    code, err = _cli(capsys, "forecast", str(odd_ids), "--model", "challenger", "--output",
                     str(out), "--report", str(report), "--series", MATH)
    assert code == 0, err
    text = report.read_text(encoding="utf-8")
    assert f'<td class="l">{MATH}</td>' in text and "data:image/png;base64," in text
    ids = set(pd.read_csv(out, dtype={"unique_id": str})["unique_id"])
    assert {MATH, "'" + FORMULA} <= ids and FORMULA not in ids

    raw = tmp_path / "raw.csv"
    code, err = _cli(capsys, "forecast", str(odd_ids), "--model", "challenger", "--output",
                     str(raw), "--no-formula-guard")
    assert code == 0, err
    assert FORMULA in set(pd.read_csv(raw, dtype={"unique_id": str})["unique_id"])
    # the Python API's switch: deepcast.ForecastOutput(path, formula_guard=False)
    api = deepcast.forecast(odd_ids, "challenger",
                            output=deepcast.ForecastOutput(tmp_path / "api.csv",
                                                           formula_guard=False))
    assert api.output == str(tmp_path / "api.csv")
    assert (tmp_path / "api.csv").read_bytes() == raw.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api.csv", "f.csv", "r.html",
                                                          "raw.csv"]
