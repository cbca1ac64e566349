"""deepcast installs as ``deepcast`` and ``deepcast.*`` only: the design card's folders
(``features/``, ``forecasting/``, ``pipelines/``, ``flows/``) are mapped to subpackages, so a
user project with its own ``pipelines`` or ``features`` package can import deepcast."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_installed() -> None:
    """A folder with an ``__init__.py`` left out of ``packages`` would be missing from a
    wheel while the editable install still finds it: the list must be whole."""
    st = _setuptools()
    listed = set(st["packages"])
    found = set()
    for name, folder in st["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed, f"missing: {found - listed}, stale: {listed - found}"


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_generic_names_are_not_importable(tmp_path: Path) -> None:
    for generic in ("pipelines", "features", "forecasting", "flows"):
        done = _run(f"import {generic}", tmp_path)
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, generic
    done = _run("import deepcast.pipelines.config, deepcast.forecasting.models, "
                "deepcast.flows.cli, deepcast.features.schema; print('ok')", tmp_path)
    assert done.stdout.strip() == "ok", done.stderr


def test_user_packages_named_like_ours_do_not_clash(tmp_path: Path) -> None:
    """A project with its own ``pipelines`` and ``features`` packages first on sys.path
    imports deepcast and trains the demo pipeline (shortened) in the same process."""
    for own in ("pipelines", "features"):
        (tmp_path / own).mkdir()
        (tmp_path / own / "__init__.py").write_text(f"OWN = '{own}'\n")
    demo = ROOT / "pipelines" / "demo.yaml"
    code = f"""
import os, sys
sys.path.insert(0, {str(tmp_path)!r})
import pipelines, features
import deepcast
cfg = deepcast.load_config({str(demo)!r})
cfg = cfg.model_copy(update={{  # the imports are under test, not the selection or plots
    "models": [m for m in cfg.models if m.type in ("naive", "seasonal_naive", "linear")],
    "training": cfg.training.model_copy(update={{"max_epochs": 1}}),
    "evaluation": cfg.evaluation.model_copy(update={{"selection": "holdout", "plots": False}})}})
result = deepcast.train(cfg)
assert pipelines.OWN == "pipelines" and features.OWN == "features"
print("best", result.best)
"""
    env_code = ("import os; os.environ['MLFLOW_TRACKING_URI'] = "
                f"'sqlite:///{tmp_path / 'mlflow.db'}'\n")
    done = _run(env_code + code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best " in done.stdout
