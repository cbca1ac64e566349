"""train -> promote -> forecast end to end on real data, real MLflow store, Prefect harness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from deepcast.features.errors import ValidationFailed
from deepcast.flows.flows import batch_forecast, train_pipeline
from deepcast.pipelines.forecast import FORECAST_COLUMNS
from deepcast.pipelines.tracking import Tracker
from tests.integration.conftest import subprocess_env, write_pipeline

pytestmark = pytest.mark.integration


def _versions(name: str) -> int:
    return len(Tracker(name).client.search_model_versions(f"name='{name}'"))


def test_train_then_forecast_then_worse_model_keeps_champion(
        prefect_harness, store, tmp_path, retail_csv):
    pipeline = write_pipeline(tmp_path, retail_csv)
    first = train_pipeline(pipeline=str(pipeline))
    assert first.decision.promoted is True
    assert first.decision.candidate_version == "1"
    names = [row["model"] for row in first.table]
    assert names == ["naive", "seasonal_naive", "lstm"]
    tracker = Tracker("it-retail")
    assert tracker.registry.aliases() == {"champion": "1", "challenger": "1"}

    # every model run is logged with the same metric names and per-epoch losses
    parent = tracker.client.get_run(first.parent_run_id)
    assert parent.data.tags["deepcast.data_sha256"] and parent.data.params["features.lookback"]
    children = tracker.client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{first.parent_run_id}'")
    assert len(children) == 3
    for child in children:
        assert {"holdout_mae", "holdout_rmse", "holdout_smape", "holdout_mase",
                "skill_mase"} <= set(child.data.metrics)
    lstm_run = next(c for c in children if c.info.run_name == "lstm")
    epochs = tracker.client.get_metric_history(lstm_run.info.run_id, "loss")
    assert len(epochs) >= 1 and [m.step for m in epochs] == list(range(len(epochs)))

    # forecast with the champion
    out = tmp_path / "out" / "forecast.csv"
    summary = batch_forecast(pipeline=str(pipeline), output=str(out))
    fc = pd.read_csv(out)
    assert list(fc.columns) == FORECAST_COLUMNS
    assert len(fc) == 6 * 6 and fc.groupby("unique_id").size().eq(6).all()
    assert (fc["model_version"] == 1).all() and summary.model_version == "1"
    assert fc["ds"].min() == "2019-01-01" and fc["ds"].max() == "2019-06-01"
    assert fc["yhat"].notna().all()

    # a second run with only a worse model: registered as challenger, champion unchanged
    worse = write_pipeline(tmp_path, retail_csv, name="it-retail", models=[{"type": "naive"}])
    second = train_pipeline(pipeline=str(worse))
    d = second.decision
    assert d.promoted is False and d.candidate == "naive"
    assert d.champion_version == "1" and d.champion_score < d.candidate_score
    assert Tracker("it-retail").registry.aliases() == {"champion": "1", "challenger": "2"}
    run = tracker.client.get_run(second.parent_run_id)
    assert run.data.tags["deepcast.promotion.decision"] == "kept-champion"
    # the champion was re-scored on today's holdout, and equals its original score
    assert d.champion_score == pytest.approx(first.decision.candidate_score)


def test_pyfunc_predicts_in_a_fresh_process(prefect_harness, store, tmp_path, m3_csv):
    over = {"data": {"path": "m3_monthly_small.csv", "freq": 1, "season_length": 12},
            "features": {"lookback": 24, "horizon": 6},
            "models": [{"type": "seasonal_naive"}, {"type": "lstm", "units": 8}]}
    pipeline = write_pipeline(tmp_path, m3_csv, name="it-m3", **over)
    train_pipeline(pipeline=str(pipeline))
    code = (
        "import json, sys, mlflow.pyfunc, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/it-m3@champion')\n"
        "fc = m.predict(pd.read_csv(sys.argv[1]))\n"
        "print(json.dumps({'rows': len(fc), 'cols': list(fc.columns),"
        " 'first_ds': int(fc['ds'].iloc[0]), 'finite': bool(fc['yhat'].notna().all())}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(m3_csv)], capture_output=True,
                          text=True, env=subprocess_env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"rows": 12 * 6, "cols": ["unique_id", "ds", "yhat", "model_name"],
                      "first_ds": 69, "finite": True}


def test_quantile_champion_writes_quantile_columns(prefect_harness, store, tmp_path,
                                                    retail_csv):
    pipeline = write_pipeline(tmp_path, retail_csv, name="it-quantiles", models=[
        {"type": "mlp", "hidden_size": 16, "quantiles": [0.1, 0.9]}],
        evaluation={"test_size": 12, "metric": "mase", "conformal": [80]})
    trained = train_pipeline(pipeline=str(pipeline))
    row = next(r for r in trained.table if r["model"] == "mlp")  # quantiles scored too
    assert 0 < row["wql"] < 1 and row["scaled_crps"] > 0 and 0 <= row["coverage_q10_q90"] <= 1
    runs = mlflow.search_runs(experiment_names=["it-quantiles"])
    assert runs["metrics.holdout_wql"].dropna().between(0, 1).any()  # on the model's run
    out = tmp_path / "q.parquet"
    batch_forecast(pipeline=str(pipeline), output=str(out), model="challenger")
    fc = pd.read_parquet(out)
    assert list(fc.columns) == FORECAST_COLUMNS + ["yhat_q10", "yhat_q50", "yhat_q90",
                                                   "yhat_lo_80", "yhat_hi_80"]
    assert (fc["yhat"] == fc["yhat_q50"]).all()
    # conformal band (calibrated on the holdout residuals) around the point forecast
    assert ((fc["yhat_lo_80"] < fc["yhat"]) & (fc["yhat"] < fc["yhat_hi_80"])).all()
    assert ((fc["yhat_q10"] <= fc["yhat_q50"]) & (fc["yhat_q50"] <= fc["yhat_q90"])).all()
    assert (fc["yhat_q10"] < fc["yhat_q90"]).mean() > 0.9  # a real interval, not a point


def test_bad_data_fails_validation_and_leaves_registry_untouched(
        prefect_harness, store, tmp_path, retail_csv):
    pipeline = write_pipeline(tmp_path, retail_csv, models=[{"type": "seasonal_naive"}])
    train_pipeline(pipeline=str(pipeline))
    before = (Tracker("it-retail").registry.aliases(), _versions("it-retail"))

    bad = pd.read_csv(retail_csv, dtype={"y": "str"})
    bad.loc[3, "y"] = "n.a."
    bad = pd.concat([bad, bad.iloc[[10]]])  # a duplicate (id, ds)
    bad_path = tmp_path / "bad.csv"
    bad.to_csv(bad_path, index=False)

    with pytest.raises(ValidationFailed) as info:
        train_pipeline(pipeline=str(pipeline), data=str(bad_path),
                       report_dir=str(tmp_path / "report"))
    assert "row 4" in str(info.value)
    assert (tmp_path / "report" / "validation.json").is_file()
    assert (Tracker("it-retail").registry.aliases(), _versions("it-retail")) == before

    # the same through the CLI: exit 3, one clear message, no traceback
    done = subprocess.run(
        [sys.executable, "-m", "deepcast", "validate", str(pipeline), "--data", str(bad_path)],
        capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 3
    assert "FAILED" in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert (Tracker("it-retail").registry.aliases(), _versions("it-retail")) == before


def test_forecast_with_unknown_alias_is_a_clear_error(prefect_harness, store, tmp_path,
                                                      retail_csv):
    from deepcast.features.errors import ConfigError

    pipeline = write_pipeline(tmp_path, retail_csv, name="it-empty")
    out = tmp_path / "never.csv"
    with pytest.raises(ConfigError, match="no version 'champion'"):
        batch_forecast(pipeline=str(pipeline), output=str(out))
    assert not out.exists()


def test_same_config_same_metrics(prefect_harness, store, tmp_path, retail_csv):
    pipeline = write_pipeline(tmp_path, retail_csv, name="it-repro",
                              models=[{"type": "lstm", "units": 8}])
    a = train_pipeline(pipeline=str(pipeline)).table
    b = train_pipeline(pipeline=str(pipeline)).table
    strip = [{k: v for k, v in row.items() if k != "fit_s"} for row in a]
    assert strip == [{k: v for k, v in row.items() if k != "fit_s"} for row in b]


def test_forecast_file_is_written_atomically(tmp_path: Path):
    from deepcast.pipelines.forecast import write_atomic

    out = tmp_path / "f.parquet"
    df = pd.DataFrame({"unique_id": ["a"], "ds": [1], "yhat": [1.0]})
    write_atomic(df, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)

    class Boom(pd.DataFrame):
        def to_parquet(self, *a, **k):  # fails half way through writing
            raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left"):
        write_atomic(Boom(df.assign(yhat=2.0)), out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)  # previous file intact
    assert [p.name for p in tmp_path.iterdir()] == ["f.parquet"]  # no temp file left
