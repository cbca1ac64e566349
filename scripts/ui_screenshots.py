"""Screenshots of the MLflow and Prefect UIs as a user sees them after `deepcast retrain`.

    .venv/bin/python scripts/ui_screenshots.py [OUT_DIR]     # default: docs/

Starts a real `mlflow server` and a real `prefect server` (with its UI) on 127.0.0.1 over
stores in a temporary folder, runs one `deepcast retrain` of a small pipeline (the six
aus_retail series the tests use) against them, and renders with headless Chromium:
``mlflow-ui.png`` (the experiment, opened by the link `deepcast ui` prints, with the train
run, its dataset and its model runs) and ``prefect-ui.png`` (the retrain's artifacts). The
test suite uses the same helpers (tests/integration/test_ui.py).

Needs Chromium (``apt-get install chromium``, or ``CHROMIUM=/path/to/chrome``) and
Playwright (in the ``dev`` extra).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "aus_retail_small.csv"
# without these, Chromium keeps trying to reach Google's hosts (a closed network refuses them)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def chromium() -> str | None:
    """The Chromium to drive: ``CHROMIUM``, else ``chromium`` / ``chromium-browser``."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")


def browser_missing() -> str | None:
    """Why the UIs cannot be rendered here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if chromium() is None:
        return ("Chromium not found: install it (apt-get install chromium; `make test` does "
                "where it runs as root) or set CHROMIUM=/path/to/chrome")
    return None


@contextmanager
def browser() -> Iterator[Any]:
    """A new page of a headless Chromium (1400x1000)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield b.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            b.close()


def render(page: Any, url: str, wait_for: str, png: Path | None = None,
           timeout_ms: int = 90_000) -> str:
    """Open ``url``, wait until ``wait_for`` shows, screenshot to ``png``; the page text."""
    page.goto(url)
    page.get_by_text(wait_for, exact=False).first.wait_for(timeout=timeout_ms)
    return _settled(page, png)


def _settled(page: Any, png: Path | None) -> str:
    """Give the rest of the page 2 s (both UIs poll: never network-idle), screenshot it to
    ``png``; its text."""
    page.wait_for_timeout(2000)
    if png is not None:
        page.screenshot(path=str(png))
    return page.inner_text("body")


def expand_runs(page: Any, parent: str, wait_for: str, png: Path | None = None) -> str:
    """On an experiment's runs page: show the nested (model) runs of the run ``parent``
    (its row's +); the page text."""
    row = page.locator("[role=row]", has_text=parent).first
    row.locator("button").first.click()
    page.get_by_text(wait_for, exact=True).first.wait_for(timeout=30_000)
    return _settled(page, png)


def pipeline(folder: Path, name: str) -> Path:
    """A small pipeline on the six-series slice, with its data copied next to it."""
    shutil.copy(DATA, folder / DATA.name)
    cfg = {"name": name,
           "data": {"path": DATA.name, "freq": "MS", "season_length": 12},
           "features": {"lookback": 24, "horizon": 6},
           "models": [{"type": "naive"}, {"type": "seasonal_naive"},
                      {"type": "mlp", "hidden_size": 16}],
           "training": {"max_epochs": 3, "batch_size": 64, "seed": 0},
           "evaluation": {"test_size": 6, "metric": "mase", "plots": False}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def retrain(path: Path, mlflow_url: str, prefect_api: str, out: Path
            ) -> subprocess.CompletedProcess:
    """`deepcast retrain` of ``path`` against the two servers, in a fresh process."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_url, PREFECT_API_URL=prefect_api)
    return subprocess.run([sys.executable, "-m", "deepcast", "retrain", str(path), "--output",
                           str(out), "--quiet"], cwd=path.parent, env=env,
                          capture_output=True, text=True, timeout=900)


def main(out_dir: Path) -> int:
    sys.path.insert(0, str(ROOT))
    from deepcast.pipelines.tracking.store import experiment_links
    from tests.servers import mlflow_server, prefect_server

    why = browser_missing()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with mlflow_server(work / "mlflow") as mlflow_url, \
                prefect_server(work / "prefect", ui=True) as api:
            done = retrain(pipeline(work, "shop"), mlflow_url, api, work / "forecast.csv")
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            (_, link), = experiment_links(mlflow_url, mlflow_url)
            with browser() as page:
                render(page, link, "train-shop")
                expand_runs(page, "train-shop", "seasonal_naive", out_dir / "mlflow-ui.png")
                render(page, api.removesuffix("/api") + "/artifacts", "shop-decision",
                       out_dir / "prefect-ui.png")
    print(f"wrote {out_dir / 'mlflow-ui.png'} and {out_dir / 'prefect-ui.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"))
