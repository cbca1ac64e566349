"""Overhead: the share of a job's wall time spent outside model fitting.

    python benchmarks/overhead.py [RUNS] [PIPELINE]   # needs pyinstrument in the venv
    python benchmarks/overhead.py 1 benchmarks/m3_monthly.yaml   # the nightly-size job
    python benchmarks/overhead.py 3 --fresh-store   # a first run: the store is created

Runs ``deepcast train PIPELINE`` (default: the demo, ``pipelines/demo.yaml``) then
``deepcast forecast`` in a fresh process (RUNS times, default 3), in a temporary folder
with its own MLflow store (created beforehand, as a nightly job finds it; ``--fresh-store``
for a first run, schema migrations included), under pyinstrument (statistical profiler,
10 ms).
Model fitting is the time inside ``KerasForecaster.fit`` (baselines do not fit); everything
else -- imports, Prefect, MLflow, Great Expectations, I/O, holdout scoring, plots -- is
overhead. Prints each run's share and its time per phase, and writes the runs and the
median share to ``benchmarks/results/overhead[_NAME].json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# Phases, by the function that does each (outermost match wins; the rest is "other":
# Prefect's engine and API calls, reading the CSV, the gate, writing the forecast).
PHASES = {
    "fit (KerasForecaster.fit)": ("fit", "forecasting/keras_model.py"),
    "imports (TF/Keras, GE, MLflow)": ("preload", "pipelines/runs/base.py"),
    "Prefect import, server start": ("start_if_needed", "flows/ephemeral.py"),
    "validation (GE)": ("validate_long_frame", "pipelines/validate.py"),
    "holdout forecasts": ("holdout_predictions", "pipelines/modelling.py"),
    "plots": ("log_model_plots", "pipelines/artifacts.py"),
    "model logging (MLflow pyfunc)": ("log_predictor", "pipelines/tracking/writer.py"),
    "MLflow client and store": ("__init__", "pipelines/tracking/store.py"),
    "promotion gate": ("promote", "pipelines/promote.py"),
    "registry load": ("load_verified", "pipelines/tracking/loader.py"),
    "batch forecast": ("predict_in_shards", "pipelines/forecast.py"),
}


def walk(frame, phases: Counter, inside: bool = False) -> None:
    """Add each outermost frame of a known phase to that phase."""
    path = frame.file_path or ""
    for phase, (function, file) in PHASES.items():
        if not inside and frame.function == function and path.endswith(file):
            phases[phase] += frame.time
            inside = True
            break
    for child in frame.children:
        walk(child, phases, inside)


DEMO = ROOT / "pipelines" / "demo.yaml"


def run_once(pipeline: Path = DEMO, fresh_store: bool = False) -> dict:
    """One in-process run of the pipeline's train and forecast under pyinstrument (the
    data is read where the YAML points; store, reports and forecast go to a temp folder,
    the store created beforehand unless ``fresh_store``, as a nightly job finds it)."""
    from pyinstrument import Profiler

    from deepcast.flows.cli import main as cli

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = uri = f"sqlite:///{tmp}/mlflow.db"
        if not fresh_store:  # a nightly job's store exists: its schema migrations are done
            subprocess.run([sys.executable, "-c", "import mlflow, sys; "
                            "mlflow.MlflowClient(sys.argv[1]).search_experiments()", uri],
                           check=True, capture_output=True)
        profiler = Profiler(interval=0.01)
        t0 = time.perf_counter()
        profiler.start()
        try:
            rc = cli(["train", str(pipeline), "--quiet"])
            rc = rc or cli(["forecast", str(pipeline), "--output", "fc.csv", "--quiet"])
        finally:
            profiler.stop()
            os.chdir(here)
        wall = time.perf_counter() - t0
    if rc:
        sys.exit(f"{pipeline.name} failed (exit {rc})")
    phases: Counter = Counter()
    walk(profiler.last_session.root_frame(), phases)
    fit = phases["fit (KerasForecaster.fit)"]
    phases["other (Prefect engine, I/O, gate)"] = wall - sum(phases.values())
    return {"wall_s": round(wall, 1), "fit_s": round(fit, 1),
            "overhead_share": round(1 - fit / wall, 3),
            "phases_s": {k: round(v, 1) for k, v in phases.most_common()}}


def main() -> None:
    fresh = "--fresh-store" in sys.argv
    argv = [a for a in sys.argv if a != "--fresh-store"]
    if len(argv) > 2 and argv[1] == "--once":
        print(json.dumps(run_once(Path(argv[2]), fresh)))
        return
    runs = int(argv[1]) if len(argv) > 1 else 3
    pipeline = Path(argv[2]).resolve() if len(argv) > 2 else DEMO
    results = []
    for i in range(runs):  # a fresh process each: imports and the server start count
        done = subprocess.run([sys.executable, __file__, "--once", str(pipeline)]
                              + ["--fresh-store"] * fresh,
                              capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"run {i + 1}: {results[-1]}", flush=True)
    shares = sorted(r["overhead_share"] for r in results)
    out = {"pipeline": str(pipeline.relative_to(ROOT)) if pipeline.is_relative_to(ROOT)
           else str(pipeline), "runs": results,
           "median_overhead_share": shares[len(shares) // 2], "fresh_store": fresh,
           "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    print(json.dumps(out, indent=1))
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    name = "overhead.json" if pipeline == DEMO else f"overhead_{pipeline.stem}.json"
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
