"""The promotion gate on rolling cut-offs, the champion history and rollback, on a real
SQLite registry with the Prefect harness; rollback through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deepcast.flows.flows import train_pipeline
from deepcast.pipelines.promote import history
from deepcast.pipelines.tracking import Tracker
from tests.integration.conftest import subprocess_env, write_pipeline

pytestmark = pytest.mark.integration

GATE = {"test_size": 12, "metric": "mase", "backtest": {"step": 3}}


def _promote_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "deepcast", "promote", *args],
                          capture_output=True, text=True, cwd=cwd, env=subprocess_env(),
                          timeout=300)


def test_gate_history_and_rollback(prefect_harness, store, tmp_path, retail_csv):
    # 1. seasonal naive alone: champion v1 (the reference passes its own bar)
    first = write_pipeline(tmp_path, retail_csv, name="it-gate", evaluation=GATE,
                           models=[{"type": "seasonal_naive"}])
    one = train_pipeline(pipeline=str(first))
    d1 = one.decision
    assert d1.promoted and d1.gate.startswith("3 cut-off(s)") and d1.windows == 3
    assert d1.candidate_score == pytest.approx(d1.seasonal_naive_score)

    # 2. naive, worse than seasonal naive on the same cut-offs: registered, not promoted
    worse = write_pipeline(tmp_path, retail_csv, name="it-gate", evaluation=GATE,
                           models=[{"type": "naive"}])
    two = train_pipeline(pipeline=str(worse))
    assert not two.decision.promoted
    assert "seasonal naive" in two.decision.reason
    tracker = Tracker("it-gate")
    registry = tracker.registry
    assert tracker.registry.aliases() == {"champion": "1", "challenger": "2"}

    # 3. an MLP that beats both: promoted, replacing v1, both scores recorded
    better = write_pipeline(tmp_path, retail_csv, name="it-gate", evaluation=GATE,
                            models=[{"type": "mlp", "hidden_size": 32}],
                            training={"max_epochs": 15, "patience": 3, "batch_size": 32,
                                      "seed": 0})
    three = train_pipeline(pipeline=str(better))
    d3 = three.decision
    assert d3.promoted, d3
    assert d3.champion_version == "1" and d3.candidate_score < d3.champion_score
    assert tracker.registry.aliases()["champion"] == "3"
    tags = tracker.registry.version_tags("3")
    assert tags["deepcast.replaced_version"] == "1" and "deepcast.promoted_at" in tags
    assert [(e["action"], e["version"], e["replaced"]) for e in history(registry)] == [
        ("promoted", "1", ""), ("promoted", "3", "1")]

    # 4. rollback through the CLI: v1 is champion again, the history says so
    done = _promote_cli(str(better), "--rollback", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["to_version"] == "1"
    assert registry.aliases()["champion"] == "1"
    assert history(registry)[-1]["action"] == "restored by rollback"
    # v1 replaced nothing: a second rollback is refused with exit 2, registry unchanged
    done = _promote_cli(str(better), "--rollback", cwd=tmp_path)
    assert done.returncode == 2 and "nothing to roll back to" in done.stderr
    assert "Traceback" not in done.stderr and registry.aliases()["champion"] == "1"
