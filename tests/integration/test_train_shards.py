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
from deepcast.pipelines.runs.train_shards import InProcessPool, train_in_shards
from tests.conftest import DATA, pipeline_dict

pytestmark = pytest.mark.integration

MODEL = {"type": "mlp", "hidden_size": 8, "quantiles": [0.1, 0.9]}


def _config(source: Path, shard_rows: int, **training):
    return parse_config(pipeline_dict(
        source, name="it-train-shards", models=[MODEL],
        features={"lookback": 24, "horizon": 6, "id_embedding": 3},
        training={"max_epochs": 3, "patience": 2, "batch_size": 32, "seed": 0,
                  "windows_per_epoch": 100, **training},
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
    assert "deepcast train" in info.value.hint


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
