"""Shared fixtures. The environment is made quiet and telemetry-free before any framework
is imported (same defaults as the CLI)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from deepcast.flows.cli import configure_environment

configure_environment()
# XLA's compile takes seconds per model, more than it saves on the suite's tiny fits; the
# tests that check XLA ask for it (jit_compile: true), and the README test runs a new
# user's defaults. Inherited by every subprocess and Dask worker the tests start.
os.environ.setdefault("DEEPCAST_JIT_COMPILE", "off")
# and one pass over the windows per epoch (training.min_steps_per_epoch: auto): the floor
# of 50 batches is a small real panel's training budget, which the suite's tiny fits do
# not need (it is tested in test_models.py with explicit counts and what auto means)
os.environ.setdefault("DEEPCAST_MIN_STEPS_PER_EPOCH", "0")
# One TensorFlow thread per test process: the suite's fits are tiny, so a second thread
# mostly spins (16 % more CPU on test_tft.py), and pytest-xdist already runs 3 processes on
# 2 cores. Inherited like the above; results stay reproducible within one thread count.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# and one OpenBLAS thread (numpy, scipy, statsmodels outside the statistical fits, which
# limit themselves): its second thread spins between the suite's small matrix calls
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
# set (to "1") when the run's one Prefect API server was started by pytest_configure
SHARED_PREFECT = "DEEPCAST_TEST_SHARED_PREFECT"
_PREFECT_KEY = pytest.StashKey[object]()


def pytest_configure(config: pytest.Config) -> None:
    """Start one Prefect API server for the whole run (the same app and database layout as
    deepcast's temporary server, in a temporary PREFECT_HOME) and export its URL before
    pytest-xdist starts its workers: every worker, every CLI subprocess and every Dask
    worker then talks to it, instead of each starting a server of its own (10-20 s of CPU
    each). Tests of the temporary server itself and the README's new-user path remove
    PREFECT_API_URL from their environment. A PREFECT_API_URL set by the caller is used
    as it is."""
    if hasattr(config, "workerinput") or os.environ.get("PREFECT_API_URL"):
        return
    from deepcast.flows.ephemeral import TemporaryServer

    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="deepcast-test-prefect-")
    server = TemporaryServer(timeout=180).start()  # stops with this process, however
    os.environ["PREFECT_API_URL"] = server.api_url
    os.environ[SHARED_PREFECT] = "1"
    config.stash[_PREFECT_KEY] = server


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the run's Prefect server and remove its PREFECT_HOME."""
    server = config.stash.get(_PREFECT_KEY, None)
    if server is not None:
        server.stop()
        shutil.rmtree(os.environ["PREFECT_HOME"], ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _shared_prefect() -> None:
    """Each test process waits once for the run's Prefect server (usually up by the time
    the first test starts)."""
    if os.environ.get(SHARED_PREFECT):
        from tests.servers import wait_http

        wait_http(f"{os.environ['PREFECT_API_URL']}/health", None, timeout=180)


@functools.cache
def _store_template() -> Path:
    """An empty MLflow SQLite store made by MLflow, once per test process."""
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="deepcast-test-store-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def mlflow_store(db: Path) -> str:
    """The URI of a new, empty MLflow SQLite store at ``db`` (its folder made), the same
    file MLflow makes: a copy of :func:`_store_template` (MLflow's schema migrations cost
    ~1.2 s of CPU per new store) with its Default experiment pointed at ``db``'s folder."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_store_template(), db)
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                     (str(db.parent / "mlruns" / "0"),))
    return f"sqlite:///{db}"


@pytest.fixture
def retail_csv() -> Path:
    """6 real monthly series (aus_retail slice), datetime ds, 96 points each."""
    return DATA / "aus_retail_small.csv"


@pytest.fixture
def m3_csv() -> Path:
    """12 real M3 monthly series, integer ds, 68 points each."""
    return DATA / "m3_monthly_small.csv"


def pipeline_dict(path: Path, **over) -> dict:
    """A small, fast pipeline config on the retail slice; ``over`` replaces sections."""
    cfg = {
        "name": "test-retail",
        "data": {"path": str(path), "freq": "MS", "season_length": 12},
        "features": {"lookback": 24, "horizon": 6},
        "models": [{"type": "naive"}, {"type": "seasonal_naive"},
                   {"type": "lstm", "units": 8}],
        "training": {"max_epochs": 2, "patience": 1, "batch_size": 64, "seed": 0},
        # no MLflow plots (~1 s per model); the tests that check plots keep the default.
        # Choice on the holdout: no second fit per model where a test checks wiring; the
        # default (selection: backtest) is tested in test_selection.py and by the README
        "evaluation": {"test_size": 6, "metric": "mase", "plots": False,
                       "selection": "holdout"},
    }
    cfg.update(over)
    return cfg


# The slowest files first (wall seconds per file with -n 3, 6 Dec 2026): pytest-xdist
# hands out whole files (--dist loadfile --no-loadscope-reorder), so a long file started
# last would leave the other workers idle at the end. Order only; no test depends on it.
SLOW_FIRST = ("test_quality.py", "test_faults.py", "test_models.py", "test_readme.py",
              "test_fanout.py", "test_bad_input.py", "test_ui.py", "test_real_servers.py",
              "test_warm_start.py", "test_cli.py", "test_pipeline.py", "test_retrain.py",
              "test_ensembles.py", "test_api.py", "test_statistical.py", "test_validate.py",
              "test_backtest.py", "test_tft.py", "test_zoo.py", "test_distributions.py",
              "test_security.py", "test_promotion.py", "test_checkpoint_fingerprint.py",
              "test_packaging.py", "test_ephemeral.py", "test_sharded_forecast.py",
              "test_train_shards.py",
              "test_covariates_pipeline.py", "test_sql.py", "test_untrusted_models.py",
              "test_tune.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order
