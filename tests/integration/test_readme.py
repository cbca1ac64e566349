"""Every README snippet runs as written, each in a fresh process, as a new user would run it
from the repository folder (no MLFLOW_TRACKING_URI, no Prefect API: the defaults)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

README = (ROOT / "README.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```", README, flags=re.S)
YAML = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_the_readme_has_snippets_to_check():
    assert len(PYTHON) >= 2 and len(YAML) >= 5
    assert any("deepcast.train(" in code for code in PYTHON)


def test_yaml_snippets_parse():
    for block in YAML:
        assert yaml.safe_load(block) is not None, block[:200]


@pytest.mark.slow
def test_python_snippets_run_in_fresh_processes(tmp_path: Path):
    """The snippet that trains runs first (the README's `make demo` step does that for a
    user); then every other snippet, in the README's order, each in its own process."""
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__", "config", "runs",
                                                  "tracking", "validation"))
    env = {k: v for k, v in os.environ.items()  # a new user's shell: no store, no server
           if not k.startswith(("MLFLOW_", "PREFECT_", "DEEPCAST_")) and k != "PYTHONPATH"}
    # but no XLA: its compile costs ~30 s of this test's CPU for what it checks, and
    # test_engine_options_train checks XLA training (what `auto` picks: test_models)
    env["DEEPCAST_JIT_COMPILE"] = "off"
    env["DEEPCAST_MIN_STEPS_PER_EPOCH"] = "0"  # nor the small-panel floor (test_models)
    trains = [code for code in PYTHON if "deepcast.train(" in code]
    said = []
    for code in [*trains, *(code for code in PYTHON if code not in trains)]:
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        said.append(done.stdout[-1500:])
        assert done.returncode == 0, f"{code}\n---\n{said}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr
