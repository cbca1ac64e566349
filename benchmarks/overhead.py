"""Overhead: the share of the demo's wall time spent outside model fitting.

    python benchmarks/overhead.py          # needs pyinstrument in the venv (not a dependency)

Runs ``deepcast train pipelines/demo.yaml`` then ``deepcast forecast`` in this process, in a
temporary folder with its own MLflow store, under pyinstrument (statistical profiler, 10 ms).
Model fitting is the time inside ``KerasForecaster.fit`` (baselines do not fit); everything
else -- imports, Prefect, MLflow, Great Expectations, I/O, holdout scoring -- is overhead.
Prints the share and the time per top-level package, and writes
``benchmarks/results/overhead.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def package(path: str) -> str:
    """Top-level package of a frame's file (site-packages/<pkg>/..., or the repo folder)."""
    m = re.search(r"site-packages/([A-Za-z0-9_]+)", path or "")
    if m:
        return m.group(1)
    if path and path.startswith(str(ROOT)):
        return Path(path).relative_to(ROOT).parts[0]
    return "python" if path else "?"


def walk(frame, fit: list[float], self_time: Counter, inside_fit: bool = False) -> None:
    """Sum the time of outermost ``fit`` frames and the self time per package."""
    is_fit = (frame.function == "fit" and frame.file_path
              and frame.file_path.endswith("forecasting/keras_model.py"))
    if is_fit and not inside_fit:
        fit.append(frame.time)
    own = frame.time - sum(child.time for child in frame.children)
    self_time["fit" if (inside_fit or is_fit) else package(frame.file_path)] += own
    for child in frame.children:
        walk(child, fit, self_time, inside_fit or bool(is_fit))


def main() -> None:
    from pyinstrument import Profiler

    from flows.cli import main as cli

    demo = ROOT / "pipelines" / "demo.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(demo.parent / "data", Path(tmp) / "data")
        shutil.copy(demo, Path(tmp) / "demo.yaml")
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        profiler = Profiler(interval=0.01)
        t0 = time.perf_counter()
        profiler.start()
        rc = cli(["train", "demo.yaml"])
        rc = rc or cli(["forecast", "demo.yaml", "--output", "fc.csv"])
        profiler.stop()
        wall = time.perf_counter() - t0
    if rc:
        sys.exit(f"the demo failed (exit {rc})")
    fit: list[float] = []
    self_time: Counter = Counter()
    walk(profiler.last_session.root_frame(), fit, self_time)
    fitting = sum(fit)
    out = {"wall_s": round(wall, 1), "fit_s": round(fitting, 1), "fits": len(fit),
           "overhead_share": round(1 - fitting / wall, 3),
           "self_time_by_package_s": {k: round(v, 1) for k, v in self_time.most_common(15)}}
    print(json.dumps(out, indent=1))
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "overhead.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
