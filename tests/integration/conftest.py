"""Real components: a SQLite MLflow store in a temp dir, Prefect's test harness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED_PREFECT, mlflow_store, pipeline_dict


@pytest.fixture(scope="session")
def prefect_harness():
    """A Prefect API for the tests that run flows: the run's shared server
    (tests/conftest.py), else Prefect's test harness for this process."""
    if os.environ.get(SHARED_PREFECT):
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> str:
    """A fresh SQLite MLflow store (tracking + registry) under tmp_path."""
    uri = mlflow_store(tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def write_pipeline(tmp_path: Path, source: Path, name: str = "it-retail", **over) -> Path:
    """Write a pipeline YAML next to a copy of ``source`` and return its path."""
    local = tmp_path / source.name
    if not local.exists():
        local.write_bytes(source.read_bytes())
    raw = pipeline_dict(Path(local.name), name=name, **over)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
