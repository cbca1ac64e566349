"""The ``deepcast`` CLI as a user runs it: real subprocesses, real exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.conftest import subprocess_env, write_pipeline

pytestmark = pytest.mark.integration


def deepcast(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600):
    return subprocess.run([sys.executable, "-m", "deepcast", *args], capture_output=True,
                          text=True, cwd=cwd, env=env or subprocess_env(), timeout=timeout)


@pytest.mark.parametrize("command", ["", "validate", "train", "backtest", "tune", "forecast",
                                     "promote",
                                     "runs", "ui", "retrain", "deploy"])
def test_help_is_instant_and_imports_no_framework(command, tmp_path):
    code = ("import sys; from deepcast.flows.cli import main\n"
            "try:\n    main([a for a in sys.argv[1:] if a])\nexcept SystemExit as e:\n"
            "    heavy = [m for m in ('tensorflow', 'prefect', 'mlflow', 'great_expectations')"
            " if m in sys.modules]\n    print('HEAVY', heavy); raise\n")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, command, "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0
    assert "usage: deepcast" in done.stdout and "HEAVY []" in done.stdout
    assert time.perf_counter() - t0 < 30  # generous bound: a hang, not a benchmark


@pytest.mark.parametrize("preset, expected", [(None, "system"), ("mimalloc", "mimalloc")])
def test_arrow_uses_the_system_allocator_unless_the_user_chose(preset, expected, tmp_path):
    env = subprocess_env()
    env.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    if preset:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    for early in ("", "import pyarrow; "):  # pyarrow imported before the CLI set it up, too
        code = (f"{early}from deepcast.flows.cli import configure_environment; "
                "configure_environment(); import pyarrow as pa; "
                "print(pa.default_memory_pool().backend_name)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected


def test_bad_command_line_exits_2(tmp_path):
    done = deepcast("train", cwd=tmp_path)
    assert done.returncode == 2 and "pipeline" in done.stderr
    done = deepcast("fly", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_validate_ok_and_json(tmp_path, retail_csv, prefect_harness, capsys, monkeypatch):
    """Through the CLI's ``main`` in this process (the fresh-process path is the next test)."""
    from deepcast.flows.cli import main

    pipeline = write_pipeline(tmp_path, retail_csv, name="cli-ok")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(pipeline)]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert main(["validate", str(pipeline), "--json", "--report-dir", "rep"]) == 0
    assert '"success": true' in capsys.readouterr().out
    assert (tmp_path / "rep" / "validation.json").is_file()
    assert (tmp_path / "rep" / "data_docs" / "index.html").is_file()


def test_validate_json_is_the_python_api_result(tmp_path, retail_csv):
    """The CLI prints the API's typed result: ``--json`` is its ``to_dict()``."""
    import deepcast as api

    pipeline = write_pipeline(tmp_path, retail_csv, name="cli-api")
    done = deepcast("validate", str(pipeline), "--json", "--report-dir", "cli", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    result = api.validate(pipeline, report_dir=tmp_path / "py")
    assert isinstance(result, api.ValidationResult) and result.success
    paths = ("report_path", "docs_path")
    same = json.loads(json.dumps(result.to_dict(), default=str))
    assert {k: v for k, v in printed.items() if k not in paths} == {
        k: v for k, v in same.items() if k not in paths}
    assert list(printed) == list(same)


@pytest.mark.slow
def test_demo_path_train_forecast_runs_through_the_cli(tmp_path, retail_csv, prefect_harness,
                                                      capsys, monkeypatch):
    """The README path in miniature: train in a fresh process (with its temporary Prefect
    server, as on a new machine), then ``forecast``, ``runs`` and ``backtest`` through the
    CLI's ``main`` here, on the store it left."""
    from deepcast.flows.cli import main

    pipeline = write_pipeline(tmp_path, retail_csv, name="cli-e2e")
    new_machine = {k: v for k, v in subprocess_env(PREFECT_HOME=str(tmp_path / ".prefect"))
                   .items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    done = deepcast("train", str(pipeline), cwd=tmp_path, env=new_machine)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PROMOTED to champion" in done.stdout and "skill_mase" in done.stdout
    assert "Traceback" not in done.stderr and "oneDNN" not in done.stderr
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default store, here
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["forecast", str(pipeline), "--output", "out/f.parquet", "--quiet"]) == 0
    fc = pd.read_parquet(tmp_path / "out" / "f.parquet")
    assert len(fc) == 36 and set(fc["model_version"]) == {"1"}
    capsys.readouterr()
    assert main(["runs", str(pipeline), "--json"]) == 0
    assert '"champion": "1"' in capsys.readouterr().out

    code = main(["backtest", str(pipeline), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    models = {row["model"]: row for row in summary["table"]}
    assert set(models) == {"naive", "seasonal_naive", "lstm"} and summary["n_windows"] == 4
    assert models["seasonal_naive"]["skill_mase"] == 0.0 and models["lstm"]["fits"] == 1


def test_log_lines_follow_stderr_when_it_is_replaced(monkeypatch):
    """The CLI's log handler writes to the stderr of the moment: a notebook's or a test's
    replacement gets the lines, and a stream closed since is never written to (no
    'Logging error' from a later run in the same process)."""
    import io
    import logging

    from deepcast.flows.settings import setup_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging(quiet=False)
    logging.getLogger("deepcast").info("one")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("deepcast").info("two")
    assert second.getvalue() == "deepcast: two\n"
