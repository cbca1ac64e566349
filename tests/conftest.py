"""Shared fixtures. The environment is made quiet and telemetry-free before any framework
is imported (same defaults as the CLI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepcast.flows.cli import configure_environment

configure_environment()
# XLA's compile takes seconds per model, more than it saves on the suite's tiny fits; the
# tests that check XLA ask for it (jit_compile: true), and the README test runs a new
# user's defaults. Inherited by every subprocess and Dask worker the tests start.
os.environ.setdefault("DEEPCAST_JIT_COMPILE", "off")

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


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
        # no MLflow plots (~1 s per model); the tests that check plots keep the default
        "evaluation": {"test_size": 6, "metric": "mase", "plots": False},
    }
    cfg.update(over)
    return cfg


# The slowest files first (seconds summed with --durations=0, 2 Dec 2026): pytest-xdist
# hands out whole files (--dist loadfile --no-loadscope-reorder), so a long file started
# last would leave the other workers idle at the end. Order only; no test depends on it.
SLOW_FIRST = ("test_faults.py", "test_cli.py", "test_bad_input.py", "test_fanout.py",
              "test_models.py", "test_readme.py", "test_pipeline.py", "test_retrain.py",
              "test_api.py", "test_real_servers.py", "test_untrusted_models.py",
              "test_backtest.py", "test_quality.py", "test_ensembles.py", "test_sql.py",
              "test_report.py", "test_covariates_pipeline.py", "test_tune.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order
