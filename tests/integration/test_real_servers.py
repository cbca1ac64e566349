"""Against real servers on 127.0.0.1 (started and stopped by process group):

- a ``prefect server``: ``deepcast deploy`` creates the scheduled deployment and serves it,
  a ``run_deployment`` of it completes with the forecast file written; a redeploy keeps a
  paused deployment (and an inactive schedule) paused and cancels runs late by more than
  one period;
- an ``mlflow server``: train -> promote -> forecast over HTTP, and the champion's drift
  profile read back through the server's artifact proxy.
"""

from __future__ import annotations

import datetime as dt
import json
import select
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import mlflow_store
from tests.integration.conftest import subprocess_env, write_pipeline
from tests.servers import mlflow_server, prefect_server, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = {"models": [{"type": "naive"}, {"type": "seasonal_naive"}],
        "evaluation": {"test_size": 12, "metric": "mase", "backtest": {"step": 3}}}


def _first_line(proc: subprocess.Popen, timeout: float = 180.0) -> str:
    """The first stdout line of ``proc`` (it keeps running); fail if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line:
                return line
        if proc.poll() is not None:
            raise AssertionError(f"deploy exited with {proc.returncode}: "
                                 f"{proc.stderr.read()[-3000:]}")
    raise AssertionError("deploy printed nothing")


def test_deploy_serve_run_and_redeploy_keeps_pause(tmp_path, retail_csv):
    from prefect import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Scheduled

    from deepcast.flows.deploy import register
    from deepcast.pipelines.tracking import Tracker

    pipeline = write_pipeline(tmp_path, retail_csv, name="it-deploy", **FAST)
    out = tmp_path / "forecasts" / "deploy_{date}.csv"
    store = mlflow_store(tmp_path / "mlruns" / "mlflow.db")
    with prefect_server(tmp_path / "prefect-server") as api:
        env = subprocess_env(PREFECT_API_URL=api, MLFLOW_TRACKING_URI=store,
                             PREFECT_HOME=str(tmp_path / "prefect-client"),
                             PREFECT_RUNNER_POLL_FREQUENCY="1")
        # one backfill tick: 2018-06-01 02:00 in Berlin, i.e. the data up to June 2018
        cmd = [sys.executable, "-m", "deepcast", "deploy", str(pipeline), "--cron",
               "0 2 * * *", "--timezone", "Europe/Berlin", "--output", str(out), "--json",
               "--backfill", "2018-06-01", "2018-06-01T12:00"]
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            done = json.loads(_first_line(proc))
            assert done["deployment"] == "retrain/it-deploy" and not done["existed"]
            (backfill,) = done["backfill_runs"]
            with temporary_settings({PREFECT_API_URL: api}):
                run = run_deployment("retrain/it-deploy", timeout=300, poll_interval=2)
                assert run.state.type == StateType.COMPLETED, run.state
                with get_client(sync_client=True) as client:
                    back = client.read_flow_run(backfill)  # queued first, run one at a time
                    assert back.state.type == StateType.COMPLETED, back.state
                    assert back.parameters["as_of"] == "2018-06-01T02:00:00+02:00"
                    dep = client.read_deployment_by_name("retrain/it-deploy")
                    (schedule,) = dep.schedules
                    assert schedule.schedule.cron == "0 2 * * *"
                    assert schedule.schedule.timezone == "Europe/Berlin" and schedule.active
                    assert not dep.paused
                    # a user pauses the deployment and its schedule (UI / CLI)
                    client.pause_deployment(dep.id)
                    client.update_deployment_schedule(dep.id, schedule.id, active=False)
                    # a run that came due three days ago while nothing served it
                    stale = client.create_flow_run_from_deployment(dep.id, state=Scheduled(
                        scheduled_time=dt.datetime.now(dt.UTC) - dt.timedelta(days=3)))
        finally:
            stop(proc)
        written = out.parent / f"deploy_{dt.datetime.now(dt.UTC):%Y-%m-%d}.csv"
        fc = pd.read_csv(written)
        # v1, or v2 if better
        champion = Tracker("it-deploy", uri=store).registry.aliases()["champion"]
        assert len(fc) == 6 * 6 and (fc["model_version"] == int(champion)).all()
        first = pd.read_csv(out.parent / "deploy_2018-06-01.csv")  # the backfill's cut-off
        assert first["ds"].min() == "2018-07-01" and (first["model_version"] == 1).all()

        with temporary_settings({PREFECT_API_URL: api}):
            again, _ = register(str(pipeline), "0 2 * * *", "Europe/Berlin", str(out),
                                backfill=("2018-06-01", "2018-06-01T12:00"))
            assert again["existed"] and again["paused"] and again["schedule_active"] is False
            assert again["late_runs_skipped"] == [stale.name]
            assert again["backfill_runs"] == [backfill]  # the same tick is not queued twice
            with get_client(sync_client=True) as client:
                dep = client.read_deployment_by_name("retrain/it-deploy")
                assert dep.paused and not dep.schedules[0].active
                assert client.read_flow_run(stale.id).state.type == StateType.CANCELLED
    assert proc.poll() is not None


def test_train_promote_forecast_over_http(prefect_harness, tmp_path, retail_csv, monkeypatch):
    from deepcast.flows.flows import batch_forecast, train_pipeline
    from deepcast.pipelines.drift import PROFILE_ARTIFACT
    from deepcast.pipelines.tracking import Tracker

    pipeline = write_pipeline(tmp_path, retail_csv, name="it-http", **FAST)
    monkeypatch.chdir(tmp_path)
    with mlflow_server(tmp_path / "mlflow-server") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        trained = train_pipeline(pipeline=str(pipeline))
        assert trained.tracking_uri == url and trained.decision.promoted
        out = tmp_path / "forecast.csv"
        summary = batch_forecast(pipeline=str(pipeline), output=str(out))
        assert summary.model_version == "1" and len(pd.read_csv(out)) == 6 * 6
        tracker = Tracker("it-http")
        assert tracker.registry.aliases() == {"champion": "1", "challenger": "1"}
        champion = tracker.registry.resolve("champion")
        profile = tracker.history.load_dict(champion.run_id, PROFILE_ARTIFACT)
        assert profile["global"]["n_series"] == 6
        assert tracker.run_url(champion.run_id).startswith(f"{url}/#/experiments/")
    # everything went through the server: its own store holds the runs, none is local
    assert (tmp_path / "mlflow-server" / "mlflow.db").stat().st_size > 0
    assert any((tmp_path / "mlflow-server" / "artifacts").rglob("MLmodel"))
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()
