"""The ``retrain`` flow under the Prefect test harness with a real SQLite MLflow store:
a failed forecast leaves the registry's aliases as before the run (its promotion and its
challenger undone), a normal run promotes and publishes, a drift breach under
``on_breach: block`` stops before training with the champion and the forecast file
untouched; a failure after registration (retrain or train, no Prefect) restores the
aliases; the CLI's fast failures."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deepcast.features.errors import RunFailed
from deepcast.flows.retrain import retrain
from deepcast.pipelines.drift import PROFILE_ARTIFACT, DriftBlocked
from deepcast.pipelines.tracking import Tracker
from tests.conftest import pipeline_dict
from tests.integration.conftest import subprocess_env, write_pipeline

pytestmark = pytest.mark.integration

OVER = {"models": [{"type": "naive"}, {"type": "seasonal_naive"}],
        "evaluation": {"test_size": 12, "metric": "mase", "backtest": {"step": 3}}}


def _run(pipeline: Path, output: Path | str, **kw):
    """Run the flow; (state, flow run id)."""
    state = retrain(pipeline=str(pipeline), output=str(output), return_state=True, **kw)
    return state, state.state_details.flow_run_id


def disk_full(patch: pytest.MonkeyPatch) -> None:
    """Writing the forecast fails as on a full disk, after the up-front path checks passed
    (the temp file next to the output cannot be created)."""
    import types

    from deepcast.pipelines import forecast

    def mkstemp(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    patch.setattr(forecast, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))


def _artifacts(flow_run_id) -> dict[str, object]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


@pytest.mark.slow
def test_retrain_promotes_publishes_and_drift_block_keeps_everything(
        prefect_harness, store, tmp_path, retail_csv, monkeypatch):
    pipeline = write_pipeline(tmp_path, retail_csv, name="it-retrain", **OVER)
    tracker = Tracker("it-retrain")
    registry = tracker.registry

    # 1. the forecast step fails (the disk is full): the registry's aliases are as
    # before the run (none: promotion and challenger undone); v1 stays, tagged with why
    with monkeypatch.context() as patch:
        disk_full(patch)
        state, run_id = _run(pipeline, tmp_path / "f.csv", as_of="2018-06-01")
    assert state.is_failed()
    with pytest.raises(RunFailed, match="cannot write"):
        state.result()
    assert registry.aliases() == {}
    assert registry.version_tags("1")["deepcast.rollback_reason"].startswith("forecast failed")
    decision = _artifacts(run_id)["it-retrain-decision"].data
    assert "failed at forecast" in decision and "not rewritten" in decision
    assert "v1 stays registered with no alias" in decision

    # 2. a normal first run: drift skipped, best promoted, forecast + artifacts written
    out = tmp_path / "fc" / "forecast_{date}.csv"
    state, run_id = _run(pipeline, out, as_of="2018-06-01")
    first = state.result()
    assert first.status == "promoted" and first.drift.checked is False
    assert "no champion yet" in first.drift_summary
    assert tracker.registry.aliases()["champion"] == "2"
    written = tmp_path / "fc" / "forecast_2018-06-01.csv"
    fc = pd.read_csv(written)
    assert fc["ds"].min() == "2018-07-01" and (fc["model_version"] == 2).all()
    arts = _artifacts(run_id)
    assert set(arts) == {"it-retrain-model-scores", "it-retrain-decision",
                         "it-retrain-mlflow-run", "it-retrain-forecast-file"}
    assert {row["model"] for row in json.loads(arts["it-retrain-model-scores"].data)} == {
        "naive", "seasonal_naive"}
    assert "**PROMOTED**" in arts["it-retrain-decision"].data
    assert f"({written.resolve().as_uri()})" in arts["it-retrain-forecast-file"].data
    assert first.train.parent_run_id in arts["it-retrain-mlflow-run"].data
    # the champion carries the reference profile of its training data
    profile = tracker.history.load_dict(registry.resolve("champion").run_id, PROFILE_ARTIFACT)
    assert profile["global"]["n_series"] == 6 and profile["window"] == 24
    assert profile["series"][fc["unique_id"].iloc[0]]["last_ds"] == "2018-06-01T00:00:00"

    # 3. new data 10x larger under on_breach: block: stopped before training
    raw = pd.read_csv(tmp_path / retail_csv.name)
    shifted = tmp_path / "shifted.csv"
    raw.assign(y=raw["y"] * 10).to_csv(shifted, index=False)
    blocking = write_pipeline(tmp_path, retail_csv, name="it-retrain",
                              drift={"on_breach": "block"}, **OVER)
    before = written.read_bytes()
    state, run_id = _run(blocking, out, data=str(shifted), as_of="2018-06-01")
    with pytest.raises(DriftBlocked) as info:
        state.result()
    assert info.value.exit_code == 3 and info.value.report.blocking
    assert any("level shifted" in b for b in info.value.report.breaches)
    assert registry.aliases() == {"champion": "2", "challenger": "2"}
    assert len(registry.versions()) == 2 and written.read_bytes() == before
    assert "stopped by the drift check" in _artifacts(run_id)["it-retrain-decision"].data

    # 4. the newest data, checked against champion v2 (warn only); the gate decides
    pipeline = write_pipeline(tmp_path, retail_csv, name="it-retrain", **OVER)
    state, run_id = _run(pipeline, out)
    second = state.result()
    assert second.drift.checked and "against champion v2" in second.drift_summary
    d = second.train.decision
    assert d.champion_version == "2" and second.status in ("promoted", "kept")
    assert tracker.registry.aliases()["champion"] == ("3" if d.promoted else "2")
    assert Path(second.forecast.output).name == f"forecast_{second.day}.csv"
    assert pd.read_csv(second.forecast.output)["ds"].min() == "2019-01-01"

    # 5. with a champion and a challenger in place, a failed forecast leaves both as they
    # were, whatever the gate decided for the new version
    before = registry.aliases()
    with monkeypatch.context() as patch:
        disk_full(patch)
        state, _ = _run(pipeline, tmp_path / "f.csv")
    assert state.is_failed()
    assert registry.aliases() == before and len(registry.versions()) == 4
    assert "deepcast.rollback_reason" in registry.version_tags("4")


def test_failures_after_registration_restore_the_aliases(store, tmp_path, retail_csv,
                                                          monkeypatch):
    """Without Prefect: a retrain whose forecast fails, and a train whose promotion fails
    after registering its version, leave champion and challenger where they were."""
    import deepcast

    cfg = pipeline_dict(retail_csv, name="it-retrain-fast", **OVER)
    registry = Tracker("it-retrain-fast").registry
    assert deepcast.train(cfg).decision.promoted
    registry.set_alias("challenger", "1")
    assert registry.aliases() == {"champion": "1", "challenger": "1"}

    with monkeypatch.context() as patch:
        disk_full(patch)
        with pytest.raises(RunFailed, match="cannot write"):
            deepcast.retrain(cfg, tmp_path / "f.csv")
    assert registry.aliases() == {"champion": "1", "challenger": "1"}
    assert registry.version_tags("2")["deepcast.rollback_reason"].startswith(
        "forecast failed")

    log_dict = Tracker.log_dict

    def broken(self, data, path, *args, **kwargs):
        if path == "promotion.json":
            raise OSError("store went away")
        return log_dict(self, data, path, *args, **kwargs)

    monkeypatch.setattr(Tracker, "log_dict", broken)
    with pytest.raises(Exception, match="store went away"):
        deepcast.train(cfg)
    assert registry.aliases() == {"champion": "1", "challenger": "1"}
    assert len(registry.versions()) == 3
    assert registry.version_tags("3")["deepcast.rollback_reason"].startswith(
        "promotion failed")


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepcast", *args], capture_output=True,
                          text=True, env=subprocess_env(**env), timeout=120)


def test_cli_fast_failures(tmp_path, retail_csv, capsys):
    from deepcast.flows.cli import main

    pipeline = write_pipeline(tmp_path, retail_csv, name="it-cli-ops")
    for args, says in (
            (["retrain", str(pipeline), "--output", str(tmp_path / "f.txt")],
             "unsupported extension"),
            (["retrain", str(pipeline), "--output", "f.csv", "--as-of", "someday"],
             "is not a date"),
            (["deploy", str(pipeline), "--cron", "0 2 * * *", "--timezone", "Mars/Base"],
             "not an IANA timezone")):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err
    # in a fresh process with no server: a clear message with the command that starts
    # one, no traceback
    env = {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": ""}
    done = _cli("deploy", str(pipeline), "--cron", "0 2 * * *", **env)
    assert done.returncode == 2, done.stderr
    assert "needs a Prefect server" in done.stderr and "prefect server start" in done.stderr
    done = _cli("deploy", str(pipeline), "--cron", "0 2 * * 8", **env)
    assert done.returncode == 2 and "not a valid cron expression" in done.stderr
    for out in (done.stderr,):
        assert "Traceback" not in out
