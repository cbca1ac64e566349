"""Security: secrets stay out of runs, logs and output; untrusted model files are refused;
servers deepcast starts listen on 127.0.0.1 only."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import DATA, mlflow_store, pipeline_dict
from tests.integration.conftest import subprocess_env
from tests.servers import free_port, stop, wait_http

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "S3cr3tT0ken-do-not-log"


def _artifact_bytes(client, run_id: str, tmp: Path) -> bytes:
    """Every artifact of a run, concatenated (downloaded from the store)."""
    import mlflow.artifacts

    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp / run_id),
                                                     tracking_uri=client.tracking_uri))
    return b"".join(p.read_bytes() for p in local.rglob("*") if p.is_file())


def test_database_url_never_reaches_runs_logs_or_output(prefect_harness, tmp_path):
    """A database URL holding a secret (here in the path of a SQLite file; a password in
    a server URL is handled the same way): train from it through the CLI, then look for
    the secret everywhere deepcast writes: CLI output, MLflow params, tags, metrics and
    artifacts of every run, registry tags, validation reports."""
    from mlflow import MlflowClient
    from prefect.settings import PREFECT_API_URL

    vault = tmp_path / f"vault-{SECRET}"
    vault.mkdir()
    with sqlite3.connect(vault / "shop.db") as conn:
        pd.read_csv(DATA / "aus_retail_small.csv").to_sql("sales", conn, index=False)
    url = f"sqlite:///{vault / 'shop.db'}"
    raw = pipeline_dict(DATA / "aus_retail_small.csv", name="sec-sql",
                        models=[{"type": "naive"}, {"type": "seasonal_naive"}])
    raw["data"] = {"sql": {"query": "SELECT unique_id, ds, y FROM sales"}, "freq": "MS",
                   "season_length": 12}
    work = tmp_path / "work"
    work.mkdir()
    (work / "p.yaml").write_text(yaml.safe_dump(raw))
    uri = mlflow_store(work / "mlruns" / "mlflow.db")
    env = subprocess_env(DEEPCAST_DB_URL=url, MLFLOW_TRACKING_URI=uri,
                         PREFECT_API_URL=PREFECT_API_URL.value(), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "deepcast", "train", "p.yaml", "-v"],
                          capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET not in done.stdout + done.stderr

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("sec-sql").experiment_id])
    assert len(runs) == 3  # parent + two models
    for run in runs:
        seen = repr((run.data.params, run.data.tags, run.data.metrics, run.info.run_name))
        assert SECRET not in seen and "shop.db" not in seen
        assert SECRET.encode() not in _artifact_bytes(client, run.info.run_id, tmp_path)
    for mv in client.search_model_versions("name='sec-sql'"):
        assert SECRET not in repr((mv.tags, mv.source, mv.description))
    for path in (work / "mlruns" / "validation").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_password_is_redacted_from_driver_messages():
    from deepcast.pipelines.sql import _redact

    url = f"postgresql+psycopg://forecaster:{SECRET}@db.internal:5432/shop"
    message = f"could not connect to {url}: password authentication failed ({SECRET})"
    redacted = _redact(message, url)
    assert SECRET not in redacted and "<database URL>" in redacted


def test_lambda_layer_model_is_refused_on_load(tmp_path):
    """A .keras file with a Lambda layer (arbitrary Python) in place of a model's network
    is refused by the loader (safe_mode=True), not executed."""
    import keras

    from deepcast.forecasting.base import KERAS_FILE, WindowSpec
    from deepcast.forecasting.models import build_forecaster, load_forecaster

    f = build_forecaster("mlp", "m", WindowSpec(8, 2, 1), {"hidden_size": 4, "layers": 1})
    f.model = f.build()
    bundle = f.save(tmp_path / "bundle")
    assert load_forecaster(bundle).model is not None  # the genuine file loads

    x = keras.Input((8,))
    evil = keras.Model(x, keras.layers.Lambda(lambda v: v * 0 + 1)(x))
    evil.save(bundle / KERAS_FILE)
    with pytest.raises(ValueError, match="Lambda|safe_mode"):
        load_forecaster(bundle)


def test_ui_listens_on_localhost_only(tmp_path):
    """`deepcast ui` (the one server deepcast starts) binds 127.0.0.1 by default, and
    prints a link per experiment that opens on its training runs."""
    from deepcast.pipelines.tracking import Tracker

    port = free_port()
    uri = mlflow_store(tmp_path / "mlflow.db")
    exp_id = Tracker("ui-pipe", uri).experiment_id
    env = subprocess_env(MLFLOW_TRACKING_URI=uri,
                         PYTHONPATH=str(ROOT), MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = tmp_path / "ui.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "deepcast", "ui", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        assert (f"ui-pipe: http://127.0.0.1:{port}/#/experiments/{exp_id}"
                "?workflowType=machine_learning") in log.read_text()
        listening = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    listening.add(local.rsplit(":", 1)[0])
        assert listening == {"0100007F"}  # 127.0.0.1, and not 0.0.0.0 / ::
    finally:
        stop(proc)
