"""Training a global model shard by shard (pipelines.runs.train_shards): one shard trains
the in-memory path's model bit for bit; several shards give the same model in this process
and on a real Dask LocalCluster with memory-limited workers; bad data names its shard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import ConfigError, ValidationFailed
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.runs.base import RunInputs, validated
from deepcast.pipelines.runs.pools import InProcessPool
from deepcast.pipelines.runs.train_shards import train_in_shards
from tests.conftest import DATA, pipeline_dict

pytestmark = pytest.mark.integration

MODEL = {"type": "mlp", "hidden_size": 8, "quantiles": [0.1, 0.9]}


def _config(source: Path, shard_rows: int, **training):
    return parse_config(pipeline_dict(
        source, name="it-train-shards", models=[MODEL],
        features={"lookback": 24, "horizon": 6, "id_embedding": 3},
        training={"max_epochs": 3, "patience": 2, "batch_size": 32, "seed": 0,
                  "windows_per_epoch": 100, "checkpoint": False, **training},
        execution={"shard_rows": shard_rows},
        evaluation={"test_size": 6, "metric": "mase", "plots": False,
                    "selection": "holdout"}))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The retail slice (6 series x 96 months) as a hive-partitioned Parquet dataset."""
    root = tmp_path_factory.mktemp("train-shards") / "sales"
    df = pd.read_csv(DATA / "aus_retail_small.csv", parse_dates=["ds"])
    for i, (_, part) in enumerate(df.groupby("unique_id")):
        folder = root / f"bucket={i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"p{i}.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def here(dataset, tmp_path_factory):
    """3 shards of 2 series, trained in this process: what every other pool must give."""
    return train_in_shards(_config(dataset, shard_rows=200), RunInputs(
        report_dir=str(tmp_path_factory.mktemp("here"))), InProcessPool())


@pytest.fixture(scope="module")
def pool(dataset):
    """A real Dask LocalCluster of 2 worker processes of 2 GiB each (TensorFlow alone takes
    about 0.9 GiB of a worker), shared by the cluster tests."""
    from deepcast.flows.shard_pool import DaskShardPool

    with DaskShardPool(_on_cluster(_config(dataset, shard_rows=200)).execution) as p:
        yield p


def _on_cluster(cfg):
    return cfg.model_copy(update={"execution": cfg.execution.model_copy(update={
        "runner": "dask", "workers": 2, "memory_limit": "2GiB"})})


def _weights(fit) -> list[np.ndarray]:
    return fit.predictor.forecaster.model.get_weights()


def test_one_shard_trains_and_scores_as_the_whole_panel(dataset, tmp_path):
    from deepcast.pipelines.modelling import evaluate, fit_model, prepare, training_settings

    cfg = _config(dataset, shard_rows=10**9)
    inputs = RunInputs(report_dir=str(tmp_path / "reports"))
    result = train_in_shards(cfg, inputs, InProcessPool())
    assert result.shards == 1 and result.series == 6
    data = validated(cfg, inputs, _plain())
    prep = prepare(data.clean, data.cfg)
    predictor, history, _ = fit_model(data.cfg.models[0], prep, training_settings(data.cfg))
    metrics, per_series = evaluate(predictor, prep)
    fit = result.fits[0]
    assert fit.history == history
    for a, b in zip(_weights(fit), predictor.forecaster.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert set(metrics) <= set(fit.metrics)
    for k, v in metrics.items():
        assert fit.metrics[k] == pytest.approx(v, rel=1e-12, nan_ok=True), k
    pd.testing.assert_frame_equal(fit.per_series, per_series)
    from deepcast.pipelines.drift import profile_window, reference_profile

    assert result.profile == reference_profile(
        data.raw, profile_window(cfg.drift, cfg.features.lookback))


def test_shards_give_one_model_in_process_and_on_a_memory_limited_cluster(
        dataset, tmp_path, here, pool):
    """3 shards of 2 series: every epoch samples across them; the same seed gives the
    same model whether the shards live here or in 2 Dask workers of 2 GiB each."""
    assert here.shards == 3 and here.series == 6 and here.train_windows > 100
    there = train_in_shards(_on_cluster(_config(dataset, shard_rows=200)),
                            RunInputs(report_dir=str(tmp_path)), pool)
    for a, b in zip(_weights(here.fits[0]), _weights(there.fits[0]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert here.fits[0].metrics == there.fits[0].metrics
    per_series = there.fits[0].per_series
    assert sorted(per_series["unique_id"]) == sorted(pd.read_parquet(dataset)["unique_id"]
                                                     .astype(str).unique())
    assert np.isfinite(there.fits[0].metrics["mase"])
    assert there.profile["global"]["n_series"] == 6 == len(there.profile["series"])
    assert there.profile["global"]["n_rows"] == len(pd.read_parquet(dataset))
    assert "wql" in there.fits[0].metrics and "coverage_q10_q90" in there.fits[0].metrics


def test_an_interrupted_sharded_fit_resumes_from_its_checkpoint(dataset, tmp_path, here,
                                                                 monkeypatch):
    """A fit stopped after its first epoch (a killed driver) goes on from its checkpoint
    on the next run: the same model as an uninterrupted fit."""
    from deepcast.pipelines.runs.train_shards import prepare_shards

    monkeypatch.chdir(tmp_path)
    cfg = _config(dataset, shard_rows=200, checkpoint=True, checkpoint_every=0)
    shards = prepare_shards(cfg, RunInputs(report_dir=str(tmp_path)), InProcessPool())

    def killed(epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shards.fit(cfg.models[0], killed)
    import json

    state_file = tmp_path / "mlruns" / "checkpoints" / cfg.name / "mlp" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["epoch"] == 1
    state["history"]["loss"][0] = 123.0  # a mark: only a resumed fit reports it
    state_file.write_text(json.dumps(state))
    predictor, history, _ = shards.fit(cfg.models[0])
    assert history["loss"][0] == 123.0
    assert history["loss"][1:] == here.fits[0].history["loss"][1:]
    for a, b in zip(predictor.forecaster.model.get_weights(), _weights(here.fits[0]),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "mlruns" / "checkpoints" / cfg.name / "mlp").exists()


def test_bad_rows_stop_the_run_naming_the_shard(dataset, tmp_path):
    df = pd.read_parquet(dataset)
    df.loc[df.index[5], "y"] = np.inf
    bad = tmp_path / "bad.parquet"
    df.to_parquet(bad, index=False)
    with pytest.raises(ValidationFailed) as info:
        train_in_shards(_config(bad, shard_rows=200), RunInputs(report_dir=str(tmp_path)),
                        InProcessPool())
    assert "shard 1/3" in str(info.value.report.to_dict())


def test_what_shard_training_refuses(dataset, tmp_path):
    cfg = _config(dataset, shard_rows=200, windows_per_epoch=None)
    with pytest.raises(ConfigError, match="windows_per_epoch"):
        train_in_shards(cfg, RunInputs(report_dir=str(tmp_path)), InProcessPool())
    with pytest.raises(ConfigError, match="is not Parquet") as info:
        train_in_shards(_config(DATA / "aus_retail_small.csv", shard_rows=200),
                        RunInputs(report_dir=str(tmp_path)), InProcessPool())
    assert "runner: serial" in info.value.hint


def _plain():
    from deepcast.pipelines.runs.base import PLAIN

    return PLAIN


class _KillAWorkerBeforeFitting:
    """Plain steps, except that one worker process is killed once the shards are prepared
    and before the fit: its shards are lost mid-run."""

    def __init__(self, client) -> None:
        self.client, self.killed = client, None

    def run(self, name, fn, *args, **kwargs):
        if name.startswith("fit-") and self.killed is None:
            import os
            import signal

            pids = self.client.run(os.getpid)
            self.killed = sorted(pids)[0]
            os.kill(pids[self.killed], signal.SIGKILL)
        return fn(*args, **kwargs)

    io = run

    def mapper(self, cfg):
        return None


def test_a_worker_killed_mid_run_loses_nothing(dataset, tmp_path, here, pool):
    """Dask makes the lost shards again from their lineage (read, validate, prepare,
    align) on a live worker: the same model and scores as a run without the kill."""
    steps = _KillAWorkerBeforeFitting(pool.client)
    there = train_in_shards(_on_cluster(_config(dataset, shard_rows=200)),
                            RunInputs(report_dir=str(tmp_path)), pool, steps)
    assert steps.killed is not None
    for a, b in zip(_weights(here.fits[0]), _weights(there.fits[0]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert here.fits[0].metrics == there.fits[0].metrics


def test_a_frame_in_memory_trains_as_its_parquet_source(dataset, tmp_path, here):
    """The Python API's frame (in the YAML's column names) is sharded by slicing: the same
    shards, the same model as from the dataset."""
    cfg, source = _config(dataset, shard_rows=200), here
    frame = pd.read_parquet(dataset).drop(columns="bucket").rename(
        columns={"unique_id": "store"})
    renamed = cfg.model_copy(update={"data": cfg.data.model_copy(update={"id_col": "store"})})
    given = train_in_shards(renamed, RunInputs(data=frame, report_dir=str(tmp_path)),
                            InProcessPool())
    assert given.shards == source.shards == 3
    for a, b in zip(_weights(source.fits[0]), _weights(given.fits[0]), strict=True):
        np.testing.assert_array_equal(a, b)


class _StepsOn:
    """Plain steps whose shards live in ``pool`` (the tests' cluster, or this process)."""

    def __init__(self, pool) -> None:
        self._pool = pool

    def run(self, name, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    io = run

    def mapper(self, cfg):
        return None

    def pool(self, cfg):
        from contextlib import nullcontext

        return nullcontext(self._pool)

    def publish(self, cfg, result):
        return []


def _tracked_config(dataset, name, shard_rows, greedy=False, bagging=True):
    cfg = _config(dataset, shard_rows)
    cfg = cfg.model_copy(update={"name": name, "evaluation": cfg.evaluation.model_copy(
        update={"conformal": [80], "test_size": 12}), "models": [
        *parse_config(pipeline_dict(dataset, models=[{"type": "seasonal_naive"}])).models,
        *cfg.models]})
    return parse_config(cfg.model_dump(mode="json") | {"ensemble": [
        {"name": "avg", "method": "mean", "members": ["seasonal_naive", "mlp"]},
        *([{"name": "bag", "method": "bagging", "model": {**MODEL, "name": "bagged"},
            "n_members": 2}] if bagging else []),
        *([{"name": "picked", "method": "greedy", "members": ["seasonal_naive", "mlp"]}]
          if greedy else [])]})


def test_train_from_one_shard_tracks_what_train_tracks(dataset, tmp_path, store):
    """One shard: the same leaderboard, champion, data digest and drift profile as
    ``train`` in one process, and the MLflow runs a user reads."""
    from deepcast.pipelines.runs.jobs import train
    from deepcast.pipelines.runs.train_from_shards import train_from_shards
    from deepcast.pipelines.tracking import Tracker

    inputs = RunInputs(report_dir=str(tmp_path / "reports"))
    cfg = _tracked_config(dataset, "it-one-shard", 10**9)
    sharded = train_from_shards(cfg, inputs, _StepsOn(InProcessPool()))
    whole = train(_tracked_config(dataset, "it-whole", 10**9), inputs, _plain())
    # every model and the ensembles that need no backtest of their members
    assert [r["model"] for r in sharded.table] == ["seasonal_naive", "mlp", "avg", "bag"]
    assert [r["model"] for r in whole.table] == ["seasonal_naive", "mlp", "avg", "bag"]
    for a, b in zip(sharded.table, whole.table, strict=True):
        assert a.keys() == b.keys()
        for k in ("mae", "rmse", "smape", "mase", "skill_mase", "wql", "epochs", "windows",
                  "select_mase", "mase_sd"):
            assert a[k] == pytest.approx(b[k], rel=1e-12, nan_ok=True), k
    assert sharded.table[1]["windows"] == 2 and np.isfinite(sharded.table[1]["wql"])
    assert sharded.decision.promoted and sharded.best == whole.best
    a, b = sharded.decision, whole.decision  # the gate: 2 cut-offs through the holdout
    assert a.windows == b.windows == 2
    assert (a.candidate_score, a.seasonal_naive_score) == (b.candidate_score,
                                                           b.seasonal_naive_score)
    assert (sharded.n_rows, sharded.n_series) == (whole.n_rows, whole.n_series)
    assert "trained from 1 shards (6 series" in " ".join(sharded.notes)

    import mlflow

    client = mlflow.MlflowClient()
    one, other = Tracker("it-one-shard"), Tracker("it-whole")
    parent = client.get_run(sharded.parent_run_id)
    assert parent.data.tags["deepcast.shards"] == "1"
    assert parent.data.tags["deepcast.data_sha256"] == client.get_run(
        whole.parent_run_id).data.tags["deepcast.data_sha256"]
    assert parent.data.metrics["data_rows"] == whole.n_rows
    other_parent = client.get_run(whole.parent_run_id).data
    for k in ("data_rows_raw", "best_holdout_mase", "best_select_mase",
              "seasonal_naive_holdout_mase"):
        assert parent.data.metrics[k] == pytest.approx(other_parent.metrics[k], rel=1e-12), k
    assert parent.data.tags["deepcast.best_model"] == other_parent.tags["deepcast.best_model"]
    from deepcast.pipelines.drift import PROFILE_ARTIFACT

    assert one.history.load_dict(sharded.parent_run_id, PROFILE_ARTIFACT) == \
        other.history.load_dict(whole.parent_run_id, PROFILE_ARTIFACT)
    runs = {client.get_run(r).info.run_name: r
            for r in one.history.child_run_ids(sharded.parent_run_id)}
    assert sorted(runs) == ["avg", "bag", "mlp", "seasonal_naive"]
    assert len(client.get_metric_history(runs["mlp"], "loss")) == 3
    # the served model's conformal bands, calibrated on the shards' holdout residuals
    a, b = (t.registry.load(t.registry.resolve("champion")).predictor for t in (one, other))
    assert a.conformal and a.conformal == b.conformal
    assert one.registry.aliases() == {"champion": "1", "challenger": "1"}


def test_deepcast_train_trains_from_shards_and_gates_against_its_champion(
        dataset, tmp_path, store, pool):
    """The command a user runs: runner dask, a Parquet dataset and windows_per_epoch train
    from 3 shards on the run's own local cluster, through Prefect tasks, into MLflow and
    the registry. The next run re-scores the champion on every shard's holdout in the
    workers and keeps it (the same model does not beat itself)."""
    import json
    import subprocess
    import sys

    import yaml

    from deepcast.pipelines.tracking import Tracker
    from tests.integration.conftest import subprocess_env

    cfg = _on_cluster(_tracked_config(dataset, "it-cli-shards", 200, greedy=True,
                                      bagging=False))
    # the command's own cluster: one worker (the module's cluster already runs two)
    one = cfg.model_copy(update={"execution": cfg.execution.model_copy(update={
        "workers": 1})})
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(one.model_dump(mode="json")))
    done = subprocess.run([sys.executable, "-m", "deepcast", "train", "p.yaml", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    first = result["decision"]
    assert first["promoted"] and first["windows"] == 2
    assert first["gate"] == "2 cut-off(s) through the holdout, step 6 (3 shards)"
    assert result["n_series"] == 6
    assert any(n.startswith("trained from 3 shards (6 series") for n in result["notes"])
    assert [r["model"] for r in result["table"]] == ["seasonal_naive", "mlp", "avg"]
    assert any(n.startswith("ensemble picked (greedy): not trained from shards")
               for n in result["notes"])

    # the nightly retrain from the same shards (in this process, on the shared cluster):
    # drift checked against the champion's profile (merged from the shards), trained,
    # gated against the champion re-scored shard by shard, forecast into a folder per shard
    from deepcast.pipelines.runs.retrain import retrain

    night = retrain(cfg, str(tmp_path / "night"), RunInputs(
        report_dir=str(tmp_path / "reports")), steps=_StepsOn(pool))
    assert night.status == "kept" and not night.drift.breached
    d = night.train.decision  # the same model does not beat itself
    assert not d.promoted and d.champion_version == "1", d
    assert d.champion_score == pytest.approx(first["candidate_score"], rel=1e-9)
    assert d.candidate_score == pytest.approx(first["candidate_score"], rel=1e-12)
    assert Tracker("it-cli-shards").registry.aliases() == {"champion": "1",
                                                          "challenger": "2"}
    assert night.forecast.series == 6 and night.forecast.model_version == "1"
    assert sorted(p.name for p in (tmp_path / "night").iterdir())[-1] == "part-00002.parquet"

    # a level shift in every series stops the night before training (drift: block)
    shifted = tmp_path / "shifted"
    for path in dataset.rglob("*.parquet"):
        part = pd.read_parquet(path)
        target = shifted / path.relative_to(dataset)
        target.parent.mkdir(parents=True, exist_ok=True)
        part.assign(y=part["y"] * 10).to_parquet(target, index=False)
    from deepcast.pipelines.drift import DriftBlocked

    blocked = cfg.model_copy(update={"drift": cfg.drift.model_copy(update={
        "on_breach": "block"})})
    with pytest.raises(DriftBlocked):
        retrain(blocked, str(tmp_path / "night2"), RunInputs(
            data=str(shifted), report_dir=str(tmp_path / "reports")), steps=_StepsOn(pool))
    assert Tracker("it-cli-shards").registry.aliases() == {"champion": "1",
                                                          "challenger": "2"}
    assert not (tmp_path / "night2").exists()


def test_backtest_from_shards_scores_as_the_in_memory_backtest(dataset, tmp_path, store,
                                                               pool):
    """One shard: every model's backtest row equals ``backtest``'s in one process. Three
    shards on the cluster: the models that do not train score exactly the same (each
    series' windows are scored where it lives, the means taken over all of them)."""
    from deepcast.pipelines.runs.backtest_shards import backtest_from_shards
    from deepcast.pipelines.runs.jobs import backtest

    models = [{"type": "seasonal_naive"}, {"type": "theta"}, MODEL]
    inputs = RunInputs(report_dir=str(tmp_path / "reports"))

    def config(name, shard_rows):
        cfg = _config(dataset, shard_rows)
        raw = cfg.model_dump(mode="json") | {"name": name, "models": models}
        raw["evaluation"]["backtest"] = {"n_windows": 3, "refit": False}
        return parse_config(raw)

    whole = backtest(config("it-bt-whole", 10**9), inputs, _plain())
    one = backtest_from_shards(config("it-bt-one", 10**9), inputs,
                               _StepsOn(InProcessPool()))
    three = backtest_from_shards(_on_cluster(config("it-bt-three", 200)), inputs,
                                 _StepsOn(pool))
    assert one.n_windows == three.n_windows == whole.n_windows == 3
    assert [r["model"] for r in one.table] == [r["model"] for r in whole.table] == [
        "seasonal_naive", "theta", "mlp"]
    keys = ("mae", "rmse", "smape", "mase", "rmsse", "skill_mase")
    for a, b in zip(one.table, whole.table, strict=True):
        assert a.keys() == b.keys()
        for k in (*keys, *(("wql",) if "wql" in a else ())):
            assert a[k] == pytest.approx(b[k], rel=1e-12, nan_ok=True), (a, k)
    for a, b in zip(three.table[:2], whole.table[:2], strict=True):
        for k in keys[:5]:
            assert a[k] == pytest.approx(b[k], rel=1e-12), (a["model"], k)
    assert np.isfinite(three.table[2]["mase"]) and np.isfinite(three.table[2]["wql"])
    assert any(n.startswith("backtested from 3 shards") for n in three.notes)
