"""Dask fan-out (``execution.runner: dask``) on a real LocalCluster of worker processes,
reporting to a real ``prefect server``: same metrics as the serial run for the same seed."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from deepcast.features.errors import ConfigError
from tests.conftest import SHARED_PREFECT, pipeline_dict
from tests.integration.conftest import write_pipeline
from tests.servers import prefect_server

pytestmark = pytest.mark.integration

MODELS = [{"type": "naive"}, {"type": "seasonal_naive"}, {"type": "linear"},
          {"type": "mlp", "hidden_size": 16}]
# no checkpoints: a second run in the same folder must train, not resume the first one;
# no XLA: compiling is most of the cost of fitting these tiny models
TRAINING = {"max_epochs": 2, "patience": 1, "batch_size": 64, "seed": 0, "checkpoint": False,
            "jit_compile": False}


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory) -> str:
    """The run's shared Prefect server (tests/conftest.py: the same app as ``prefect server
    start``, over HTTP), else one started here."""
    if os.environ.get(SHARED_PREFECT):
        yield os.environ["PREFECT_API_URL"]
        return
    with prefect_server(tmp_path_factory.mktemp("prefect")) as api:
        yield api


def _train(pipeline: Path, api: str, capfd) -> dict:
    """``deepcast train PIPELINE --json`` through the Python API and the Prefect flow (what
    the CLI runs); what the Dask workers and their nannies printed is checked too."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import deepcast

    capfd.readouterr()
    with temporary_settings({PREFECT_API_URL: api}):
        result = deepcast.train(str(pipeline), orchestrator="prefect")
    err = capfd.readouterr().err
    assert "Traceback" not in err and "still alive" not in err, err[-3000:]
    return json.loads(json.dumps(result.to_dict(), default=str))


def _task_runs(api: str, names: list[str], flow_run: str | None = None) -> list[dict]:
    """The task runs of these names (in flow runs whose name contains ``flow_run``: the
    server is shared with other tests)."""
    query: dict = {"task_runs": {"name": {"any_": names}}}
    if flow_run:
        query["flow_runs"] = {"name": {"like_": flow_run}}
    body = json.dumps(query).encode()
    req = urllib.request.Request(f"{api}/task_runs/filter", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


@pytest.mark.slow
def test_train_on_dask_matches_serial(store, tmp_path, retail_csv, prefect_api, capfd):
    """`deepcast train` with runner dask (its Prefect flow, models fanned out to a local
    cluster of worker processes), against the same models fit one after the other."""
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.ingest import ingest
    from deepcast.pipelines.promote import promote
    from deepcast.pipelines.tracking import Tracker
    from deepcast.pipelines.train import train_models
    from deepcast.pipelines.validate import validate_long_frame

    over = {"models": MODELS, "training": TRAINING,
            "evaluation": {"test_size": 12, "metric": "mase", "backtest": {"step": 6}}}
    cfg = load_config(write_pipeline(tmp_path, retail_csv, name="fan-serial", **over))
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    tracker = Tracker(cfg.name)
    with tracker.run("train-fan-serial"):
        outcome = train_models(clean, cfg, tracker, data_sha256="")
        decision = promote(outcome, clean, cfg, tracker).to_dict()
    dask = _train(write_pipeline(tmp_path, retail_csv, name="fan-dask",
                                 execution={"runner": "dask", "workers": 2}, **over),
                  prefect_api, capfd)

    def scores(table: list[dict]) -> dict:
        return {r["model"]: {k: r[k] for k in ("mae", "rmse", "smape", "mase", "skill_mase",
                                               "select_mase", "windows", "epochs")} for r in table}

    serial = scores(outcome.table().to_dict(orient="records"))
    assert scores(dask["table"]) == serial  # bit-identical: same seeds, same data
    assert serial["mlp"]["epochs"] == 2
    for key in ("candidate", "candidate_score", "seasonal_naive_score", "promoted"):
        assert dask["decision"][key] == decision[key], key

    # each model was a Prefect task run (in a worker) and a nested MLflow run of the parent
    runs = _task_runs(prefect_api, ["linear", "mlp"], flow_run="train-fan-dask-")
    assert sorted(r["name"] for r in runs) == ["linear", "mlp"]
    assert {r["state_type"] for r in runs} == {"COMPLETED"}
    client = MlflowClient(store)
    children = client.search_runs(
        [client.get_experiment_by_name("fan-dask").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{dask['parent_run_id']}'")
    assert sorted(r.info.run_name for r in children) == [m["type"] for m in sorted(
        MODELS, key=lambda m: m["type"])]
    mlp = next(r for r in children if r.info.run_name == "mlp")
    assert len(client.get_metric_history(mlp.info.run_id, "loss")) == 2  # epochs logged


@pytest.mark.slow
def test_backtest_refit_on_dask_matches_serial(tmp_path, monkeypatch, retail_csv,
                                               prefect_api):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deepcast.flows.fanout import dask_mapper
    from deepcast.pipelines.backtest import run_backtest
    from deepcast.pipelines.config import parse_config
    from deepcast.pipelines.ingest import ingest
    from deepcast.pipelines.validate import validate_long_frame

    monkeypatch.chdir(tmp_path)
    cfg = parse_config(pipeline_dict(
        retail_csv, models=[{"type": "seasonal_naive"}, {"type": "linear"}],
        training={**TRAINING, "max_epochs": 1},
        evaluation={"test_size": 6, "backtest": {"n_windows": 2, "step": 6, "refit": True}},
        execution={"runner": "dask"}))
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    serial = run_backtest(clean, cfg)
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        fanned = run_backtest(clean, cfg, mapper=dask_mapper(cfg.execution))
    pd.testing.assert_frame_equal(fanned.summary.drop(columns="seconds"),
                                  serial.summary.drop(columns="seconds"))
    for name, fc in serial.forecasts.items():
        pd.testing.assert_frame_equal(fanned.forecasts[name], fc)
    assert fanned.summary.set_index("model").loc["linear", "fits"] == 2
    names = [r["name"] for r in _task_runs(prefect_api, ["linear-cutoff-0", "linear-cutoff-1"])]
    assert sorted(names) == ["linear-cutoff-0", "linear-cutoff-1"]


def test_remote_cluster_without_a_prefect_server_is_refused(retail_csv, monkeypatch):
    """Remote workers cannot reach this process's ephemeral API: exit 2 saying what to run."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deepcast.flows.fanout import dask_mapper
    from deepcast.pipelines.config import DASK_ADDRESS_ENV, parse_config

    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://10.0.0.5:8786")
    cfg = parse_config(pipeline_dict(retail_csv, execution={"runner": "dask"}))
    with temporary_settings(restore_defaults={PREFECT_API_URL}), \
            pytest.raises(ConfigError) as info:
        dask_mapper(cfg.execution)
    msg = str(info.value)
    assert info.value.exit_code == 2
    assert "tcp://10.0.0.5:8786" in msg and "PREFECT_API_URL" in msg
    assert "prefect server start" in msg
