"""Fault drills: what a crash, a dead server, a diverging model, a race or a full disk
leaves behind. Each drill runs the real thing (a `deepcast` subprocess killed with SIGKILL,
a real `mlflow server` stopped mid-run, a real tmpfs that is full or read-only) and
checks that no partial result reaches a user: no torn forecast file, no half-registered
model, no alias moved, no run left RUNNING for ever.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import DATA, mlflow_store
from tests.integration.conftest import subprocess_env
from tests.servers import mlflow_server

pytestmark = pytest.mark.integration

RETAIL = DATA / "aus_retail_small.csv"
ROOT = Path(__file__).resolve().parents[2]


def config(name: str, **over) -> dict:
    cfg = {"name": name,
           "data": {"path": str(RETAIL), "freq": "MS", "season_length": 12},
           "features": {"lookback": 24, "horizon": 6},
           "models": [{"type": "naive"}, {"type": "seasonal_naive"}],
           "training": {"seed": 0, "batch_size": 32, "jit_compile": False},
           "evaluation": {"test_size": 6}}
    cfg.update(over)
    return cfg


def write(d: Path, cfg: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    path = d / "p.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def api(prefect_harness) -> str:
    """The session's Prefect test server, for CLI subprocesses (no ephemeral start)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def env_for(api: str, uri: str, **extra: str) -> dict[str, str]:
    return subprocess_env(PREFECT_API_URL=api, MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(ROOT),
                          **extra)


def cli(*args: str, cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepcast", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def start(*args: str, cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deepcast", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(check, proc: subprocess.Popen, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the process ended ({proc.returncode}) before {what}: "
                                 f"{proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill_when(check, proc: subprocess.Popen, what: str) -> None:
    """SIGKILL ``proc`` as soon as ``check()`` holds (no clean-up can run), and reap it."""
    try:
        wait_for(check, proc, what)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def registry(uri: str, name: str) -> tuple[list, dict]:
    c = client(uri)
    versions = sorted(v.version for v in c.search_model_versions(f"name='{name}'"))
    aliases = dict(c.get_registered_model(name).aliases) if versions else {}
    return versions, aliases


# --------------------------------------------------------------------------- (a) SIGKILL


@pytest.mark.slow
def test_sigkill_during_training_then_rerun_resumes_to_the_same_result(api, tmp_path,
                                                                       monkeypatch, capsys):
    """Kill -9 a `deepcast train` after its second checkpoint; the rerun resumes there,
    ends with the metrics of an uninterrupted run with the same seed (trained here, through
    the API), and marks the run the killed process left RUNNING as KILLED."""
    import deepcast

    epochs = 8
    cfg = config("drill-kill", models=[{"type": "seasonal_naive"},
                                       {"type": "lstm", "units": 8}],
                 training={"seed": 0, "batch_size": 32, "jit_compile": False,
                           "max_epochs": epochs, "patience": epochs, "checkpoint_every": 0})
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store(clean_dir / "mlflow.db"))
    monkeypatch.chdir(write(clean_dir, cfg).parent)
    clean = json.loads(json.dumps(deepcast.train(cfg).to_dict(), default=str))

    uri = mlflow_store(killed_dir / "mlflow.db")
    env = env_for(api, uri)
    pipeline = write(killed_dir, cfg)
    state = killed_dir / "mlruns" / "checkpoints" / "drill-kill" / "lstm" / "state.json"

    def two_epochs() -> bool:
        try:
            return json.loads(state.read_text())["epoch"] >= 2
        except (OSError, ValueError, KeyError):
            return False

    proc = start("train", str(pipeline), cwd=killed_dir, env=env)
    kill_when(two_epochs, proc, "the second checkpoint")
    resumed_from = json.loads(state.read_text())["epoch"]
    assert 2 <= resumed_from < epochs  # killed mid-training
    left = [r for r in client(uri).search_runs([client(uri).get_experiment_by_name(
        "drill-kill").experiment_id]) if r.info.status == "RUNNING"]  # what SIGKILL leaves
    assert {r.info.run_name for r in left} == {"train-drill-kill", "lstm"}

    # the rerun, through the CLI's main in this process (the killed one was a process)
    from deepcast.flows.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(killed_dir)
    capsys.readouterr()
    code = main(["train", str(pipeline), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert not state.parent.exists()  # the finished fit removed its checkpoint

    def table(result: dict) -> dict:
        return {r["model"]: {k: r[k] for k in ("mae", "rmse", "smape", "mase", "epochs")}
                for r in result["table"]}

    resumed = table(json.loads(out.strip().splitlines()[-1]))
    uninterrupted = table(clean)
    assert resumed.keys() == uninterrupted.keys() == {"seasonal_naive", "lstm"}
    for model, scores in uninterrupted.items():
        assert resumed[model] == pytest.approx(scores, rel=1e-6), model
    for run in left:
        after = client(uri).get_run(run.info.run_id)
        assert after.info.status == "KILLED"
        assert "process" in after.data.tags.get("deepcast.end_reason", "")


# --------------------------------------------------------------------------- (b) torn file


WRITER = """
import sys
import numpy as np, pandas as pd
from deepcast.pipelines.forecast import write_atomic
n = 3_000_000
df = pd.DataFrame({"unique_id": np.repeat(np.arange(n // 10), 10).astype(str),
                   "ds": np.tile(np.arange(10), n // 10), "yhat": np.random.rand(n)})
print("writing", flush=True)
write_atomic(df, sys.argv[1])
"""


def test_sigkill_while_writing_a_forecast_leaves_the_previous_file(tmp_path):
    """Kill -9 the writer mid-write: the forecast path still holds the previous file; the
    orphaned temp file is removed by the next write."""
    from deepcast.pipelines.forecast import write_atomic

    out = tmp_path / "out" / "f.csv"
    write_atomic(pd.DataFrame({"unique_id": ["a"], "ds": [1], "yhat": [1.0]}), out)
    previous = out.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def temp_growing() -> bool:
        return any(p.stat().st_size > 1 << 20 for p in out.parent.glob(".f.csv.*.tmp"))

    kill_when(temp_growing, proc, "the temp file to grow")
    assert out.read_bytes() == previous  # never a partial file at the output path
    assert list(out.parent.glob(".f.csv.*.tmp"))  # the orphan SIGKILL leaves ...
    write_atomic(pd.DataFrame({"unique_id": ["b"], "ds": [2], "yhat": [2.0]}), out)
    assert pd.read_csv(out)["unique_id"].tolist() == ["b"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.csv"]  # ... is cleaned


# --------------------------------------------------------------------------- (c) server


@pytest.mark.slow
def test_tracking_server_going_away_mid_run(api, tmp_path):
    """Stop the MLflow server once the train run has started: bounded retries, then exit 1
    naming the tracking URI; nothing registered, no alias."""
    root = tmp_path / "mlflow"
    with mlflow_server(root) as url:
        env = env_for(api, url)
        pipeline = write(tmp_path / "p", config("drill-server"))
        proc = start("train", str(pipeline), cwd=tmp_path / "p", env=env)

        def run_started() -> bool:
            try:
                with sqlite3.connect(root / "mlflow.db") as conn:
                    return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] > 0
            except sqlite3.Error:
                return False

        try:
            wait_for(run_started, proc, "the parent run")
        except BaseException:
            proc.kill()
            raise
    # the server is gone now (the context manager stopped its process group)
    try:
        _, err = proc.communicate(timeout=180)  # bounded: tens of seconds, not minutes
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert f"tracking store {url}" in err and "fix:" in err and "Traceback" not in err
    assert err.count("error:") == 1
    versions, aliases = registry(f"sqlite:///{root / 'mlflow.db'}", "drill-server")
    assert versions == [] and aliases == {}


def test_unreachable_tracking_server_fails_fast_with_a_clear_message(api, tmp_path):
    """No server at all (a closed port): forecast's preflight names the URI, exit 1."""
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    pipeline = write(tmp_path, config("drill-down"))
    done = cli("forecast", str(pipeline), "--output", "f.csv", cwd=tmp_path,
               env=env_for(api, url), timeout=180)
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"tracking store {url}" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "f.csv").exists()


# --------------------------------------------------------------------------- (d) NaN loss


def test_nan_loss_mid_training_fails_the_run_and_promotes_nothing(prefect_harness, store,
                                                                 tmp_path):
    """A diverging model fails its train run (FAILED in MLflow, exit 1 material); the
    champion of the previous run keeps its alias and no version is added."""
    from deepcast.features.errors import RunFailed
    from deepcast.flows.flows import train_pipeline

    good = write(tmp_path / "good", config("drill-nan"))
    train_pipeline(pipeline=str(good))
    before = registry(store, "drill-nan")
    assert before == ([1], {"champion": 1, "challenger": 1})

    bad = write(tmp_path / "bad", config(
        "drill-nan", models=[{"type": "seasonal_naive"},
                             {"type": "mlp", "instance_norm": False, "hidden_size": 8}],
        training={"max_epochs": 3, "learning_rate": 1e12, "loss": "mse", "batch_size": 32,
                  "jit_compile": False, "checkpoint": False}))
    with pytest.raises(RunFailed, match="NaN/inf"):
        train_pipeline(pipeline=str(bad))
    assert registry(store, "drill-nan") == before
    c = client(store)
    runs = c.search_runs([c.get_experiment_by_name("drill-nan").experiment_id],
                         order_by=["start_time DESC"])
    failed = [r for r in runs if r.info.status == "FAILED"]
    names = {r.info.run_name for r in failed}
    assert "mlp" in names and any(n.startswith("train-") for n in names)


# --------------------------------------------------------------------------- (e) race


@pytest.mark.slow
def test_two_trains_at_once_choose_one_champion(api, tmp_path):
    """Two `deepcast train` of the same pipeline at the same time: two versions, one
    champion, and the second decision was taken against the first one's champion (the
    promotion decision is serialised: no lost update)."""
    uri = mlflow_store(tmp_path / "mlflow.db")  # the schema made once, before the race
    env = env_for(api, uri)
    pipeline = write(tmp_path, config("drill-race"))
    procs = [start("train", str(pipeline), "--json", cwd=tmp_path, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(e[-2000:] for _, e in outs)
    decisions = sorted((json.loads(o.strip().splitlines()[-1])["decision"] for o, _ in outs),
                       key=lambda d: int(d["candidate_version"]))
    versions, aliases = registry(uri, "drill-race")
    assert versions == [1, 2]
    first, second = decisions
    assert first["champion_version"] is None and first["promoted"]
    assert second["champion_version"] == "1"  # saw the first champion: no lost update
    assert aliases["champion"] == (2 if second["promoted"] else 1)
    assert aliases["challenger"] == 2


# --------------------------------------------------------------------------- (f) disk


@pytest.fixture
def small_fs(tmp_path):
    """A real 64 KiB tmpfs (needs root and mount; skipped where neither is available)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_and_read_only_output_leave_the_previous_forecast(small_fs):
    from deepcast.features.errors import RunFailed
    from deepcast.pipelines.forecast import write_atomic

    out = small_fs / "f.csv"
    write_atomic(pd.DataFrame({"unique_id": ["a"], "ds": [1], "yhat": [1.0]}), out)
    previous = out.read_bytes()
    big = pd.DataFrame({"unique_id": ["x" * 20] * 20_000, "ds": range(20_000),
                        "yhat": 1.0})  # ~600 KB: cannot fit in 64 KiB
    with pytest.raises(RunFailed, match=r"writing .*f\.csv failed: No space left on device"):
        write_atomic(big, out)
    assert out.read_bytes() == previous
    assert sorted(p.name for p in small_fs.iterdir()) == ["f.csv"]  # no temp left

    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    with pytest.raises(RunFailed, match=r"cannot write in .*: Read-only file system"):
        write_atomic(big.head(1), out)
    assert out.read_bytes() == previous


def test_a_dataset_inserted_by_another_run_meanwhile_is_linked(tmp_path):
    """MLflow looks a run's dataset up and then inserts it: a concurrent train of the same
    data can insert it in between, and MLflow then raises RESOURCE_ALREADY_EXISTS. The
    writer tries once more and links the dataset that now exists; other errors stay
    errors."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

    from deepcast.pipelines.tracking import Tracker
    from deepcast.pipelines.tracking.datasets import RunDataset

    tracker = Tracker("drill-datasets", mlflow_store(tmp_path / "mlflow.db"))
    real = tracker.client
    data = RunDataset("sales", "sales.csv", "0123456789abcdef", "training",
                      (("y", "double"),), {"num_rows": 3})

    class RacedOnce:  # the real client, whose first log_inputs lost the insert race
        def __init__(self, error_code):
            self.error_code, self.calls = error_code, 0

        def log_inputs(self, run_id, datasets):
            self.calls += 1
            if self.calls == 1:
                raise MlflowException("UNIQUE constraint failed: datasets.experiment_id, "
                                      "datasets.name, datasets.digest",
                                      error_code=self.error_code)
            return real.log_inputs(run_id, datasets=datasets)

    with tracker.run("raced"):
        run_id = tracker.active_run_id()
        tracker.client = raced = RacedOnce(RESOURCE_ALREADY_EXISTS)
        tracker.log_inputs([data])
        assert raced.calls == 2
        tracker.client = RacedOnce(0)  # not a lost race: raised
        with pytest.raises(MlflowException):
            tracker.log_inputs([data])
        tracker.client = real
    inputs = real.get_run(run_id).inputs.dataset_inputs
    assert [(d.dataset.name, d.dataset.digest) for d in inputs] == \
        [("sales", "0123456789abcdef")]


def test_model_metrics_on_a_dataset_inserted_meanwhile_are_logged(tmp_path, monkeypatch):
    """Metrics logged on a model and a dataset make MLflow link (insert) the dataset first,
    with the same race, which the SQL store lets through as its unique-key violation (the
    two-trains drill failed on it once): the writer tries once more, and the metrics are
    logged once."""
    import mlflow
    from sqlalchemy.exc import IntegrityError

    from deepcast.pipelines.tracking import Tracker
    from deepcast.pipelines.tracking.datasets import RunDataset

    tracker = Tracker("drill-model-metrics", mlflow_store(tmp_path / "mlflow.db"))
    data = RunDataset("sales", "sales.csv", "0123456789abcdef", "holdout",
                      (("y", "double"),), {"num_rows": 3})
    real, calls = mlflow.log_metrics, []

    def raced_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO datasets", {}, Exception(
                "UNIQUE constraint failed: datasets.experiment_id, datasets.name, "
                "datasets.digest"))
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_metrics", raced_once)
    with tracker.run("raced"):
        run_id = tracker.active_run_id()
        model = mlflow.create_external_model(name="m")
        tracker.log_model_metrics(model.model_id, {"holdout_mase": 0.5}, data)
    assert len(calls) == 2
    assert [m.value for m in tracker.client.get_metric_history(run_id, "holdout_mase")] \
        == [0.5]
    on_model = mlflow.get_logged_model(model.model_id).metrics
    assert [(m.key, m.value, m.dataset_digest) for m in on_model] == \
        [("holdout_mase", 0.5, "0123456789abcdef")]
    inputs = tracker.client.get_run(run_id).inputs.dataset_inputs
    assert [d.dataset.digest for d in inputs] == ["0123456789abcdef"]
