"""Wall time of `deepcast train` serial vs on a local Dask cluster (execution.runner: dask).

Runs the pipeline alternately serial and fanned out (so both see the same background
load), each run in a fresh folder with its own MLflow store and no checkpoints (a rerun
must train, not resume), on Prefect's ephemeral API as a user would. Prints every run,
the medians, the speed-up, and the load average around each run.

    .venv/bin/python benchmarks/fanout_speedup.py pipelines/demo.yaml --runs 2 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def run_once(raw: dict, runner: str, workers: int) -> dict:
    """One `deepcast train --json` in a fresh folder; wall seconds and the model table."""
    cfg = {**raw, "training": {**raw.get("training", {}), "checkpoint": False},
           "execution": {"runner": runner, "workers": workers}}
    with tempfile.TemporaryDirectory(prefix=f"fanout-{runner}-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run([str(BIN / "deepcast"), "train", str(path), "--json"],
                              cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{runner} run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"runner": runner, "wall_s": round(wall, 1), "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "fit_s": {r["model"]: r["fit_s"] for r in summary["table"]},
            "mase": {r["model"]: r["mase"] for r in summary["table"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pipeline", type=Path)
    parser.add_argument("--runs", type=int, default=2, help="runs of each (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    args = parser.parse_args()
    raw = yaml.safe_load(args.pipeline.read_text())
    raw["data"]["path"] = str((args.pipeline.parent / raw["data"]["path"]).resolve())
    print(f"cpus {os.cpu_count()}; uptime: {subprocess.getoutput('uptime').strip()}")
    results = []
    for _ in range(args.runs):
        for runner in ("serial", "dask"):
            r = run_once(raw, runner, args.workers)
            results.append(r)
            print(json.dumps(r), flush=True)
    med = {runner: statistics.median(r["wall_s"] for r in results if r["runner"] == runner)
           for runner in ("serial", "dask")}
    same = all(r["mase"] == results[0]["mase"] for r in results)
    print(f"median wall: serial {med['serial']:.1f} s, dask ({args.workers} workers) "
          f"{med['dask']:.1f} s, speed-up x{med['serial'] / med['dask']:.2f}; "
          f"holdout MASE identical in every run: {same}")
    print(f"uptime: {subprocess.getoutput('uptime').strip()}")


if __name__ == "__main__":
    main()
