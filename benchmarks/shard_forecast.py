"""Batch forecast of a large panel: into one file vs into a folder, shard by shard, serial
and on a 2-worker Dask LocalCluster; wall time, rows/s and peak RSS of the driver and of
each worker.

    python benchmarks/shard_forecast.py [--series 10000] [--length 1000] [--repeats 2]
        [--modes file folder dask] [--cap-gib 4]

The panel is synthetic (``speed.synthetic_panel``: seasonal random walks with noise,
monthly ``ds`` from 2000-01, the default datetime path) written as a Parquet dataset of 10
files sorted by series. A DLinear model is trained once (one epoch) on the first 200
series; each forecast is a fresh ``deepcast forecast`` process (``--model 1 --data
DATASET``), the modes interleaved per repeat. Peak RSS is sampled every 0.1 s with psutil:
the driver is the CLI process, the workers its spawned children. ``--cap-gib`` runs each
forecast in a memory cgroup (Linux, cgroup v1, root) and records a killed run. Results:
``benchmarks/results/shard_forecast.json``.
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

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
DEEPCAST = str(Path(sys.executable).with_name("deepcast"))
MODES = {  # mode -> (output name, execution settings)
    "file": ("forecast.parquet", {"runner": "serial"}),
    "folder": ("forecast", {"runner": "serial"}),
    "dask": ("forecast", {"runner": "dask", "workers": 2}),
}


def build(root: Path, series: int, length: int) -> Path:
    """The panel as a dataset of 10 Parquet files, and the first 200 series as one file."""
    from speed import long_frame, synthetic_panel

    frame = long_frame(synthetic_panel(series, length))
    folder = root / "panel"
    folder.mkdir()
    per = -(-series // 10) * length
    for i in range(10):
        frame.iloc[i * per:(i + 1) * per].to_parquet(folder / f"part-{i}.parquet", index=False)
    frame.iloc[:200 * length].to_parquet(root / "train.parquet", index=False)
    return folder


def pipeline(root: Path, shard_rows: int, execution: dict) -> Path:
    cfg = {"name": "shard-bench", "data": {"path": "train.parquet", "freq": "MS",
                                            "season_length": 12},
           "features": {"lookback": 36, "horizon": 18},
           "models": [{"type": "linear"}],
           "training": {"max_epochs": 1, "batch_size": 1024, "checkpoint": False},
           "evaluation": {"test_size": 18, "plots": False, "selection": "holdout"},
           "execution": {"shard_rows": shard_rows, **execution}}
    path = root / f"p-{execution['runner']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


CGROUP = Path("/sys/fs/cgroup/memory")  # cgroup v1 memory controller (needs root)


def memory_cap(gib: float) -> Path:
    """A cgroup whose processes (the CLI and every worker it spawns) may use ``gib`` GiB
    of memory together; the kernel kills them past it (there is no swap to spill into)."""
    group = CGROUP / f"deepcast-bench-{os.getpid()}"
    if not CGROUP.is_dir():
        raise SystemExit(f"--cap-gib needs the cgroup v1 memory controller at {CGROUP}")
    group.mkdir(exist_ok=True)
    (group / "memory.limit_in_bytes").write_text(str(int(gib * 2**30)))
    return group


def measure(cmd: list[str], env: dict, cwd: Path, cap: Path | None = None) -> dict:
    """Wall time and peak RSS (MiB) of the driver and of its busiest child; under ``cap``
    a run the kernel kills is recorded as failed, not raised."""
    start = time.perf_counter()
    if cap is not None:  # join the group, then become the CLI
        cmd = ["sh", "-c", f'echo $$ > {cap / "cgroup.procs"} && exec "$@"', "sh", *cmd]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    driver, peaks = psutil.Process(proc.pid), {}
    while proc.poll() is None:
        try:
            peaks["driver"] = max(peaks.get("driver", 0), driver.memory_info().rss)
            for child in driver.children():
                if "spawn_main" in " ".join(child.cmdline()):
                    peaks[child.pid] = max(peaks.get(child.pid, 0), child.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode and cap is not None:
        return {"seconds": round(time.perf_counter() - start, 2), "failed":
                f"exit {proc.returncode} under the cap: {err.strip()[-300:]}",
                "driver_peak_mb": round(peaks.get("driver", 0) / 2**20, 1)}
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    workers = [v for k, v in peaks.items() if k != "driver"]
    return {"seconds": round(time.perf_counter() - start, 2),
            "driver_peak_mb": round(peaks.get("driver", 0) / 2**20, 1),
            "worker_peak_mb": round(max(workers) / 2**20, 1) if workers else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--length", type=int, default=1_000)
    ap.add_argument("--shard-rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--cap-gib", type=float, default=None,
                    help="run each forecast (driver and workers together) in a memory "
                    "cgroup of this many GiB; a killed run is recorded as failed")
    args = ap.parse_args()
    cap = memory_cap(args.cap_gib) if args.cap_gib else None
    root = Path(tempfile.mkdtemp(prefix="deepcast-shards-"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    dataset = build(root, args.series, args.length)
    subprocess.run([DEEPCAST, "train", str(pipeline(root, args.shard_rows, {"runner":
                    "serial"})), "-q"], cwd=root, env=env, check=True, capture_output=True)
    runs: dict[str, list[dict]] = {m: [] for m in args.modes}
    for _ in range(args.repeats):
        for mode in args.modes:
            name, execution = MODES[mode]
            cmd = [DEEPCAST, "forecast", str(pipeline(root, args.shard_rows, execution)),
                   "--model", "1", "--data", str(dataset), "--output", str(root / name), "-q"]
            runs[mode].append(measure(cmd, env, root, cap))
            print(mode, runs[mode][-1], flush=True)
    rows = args.series * args.length
    summary = {mode: {"median_seconds": statistics.median(r["seconds"] for r in rs),
                      "rows_per_second": round(rows / statistics.median(
                          r["seconds"] for r in rs)),
                      "driver_peak_mb": max(r["driver_peak_mb"] for r in rs),
                      "worker_peak_mb": max((r.get("worker_peak_mb") or 0) for r in rs) or None,
                      "failed": sum("failed" in r for r in rs), "runs": rs}
               for mode, rs in runs.items()}
    if cap is not None:
        cap.rmdir()
    result = {"rows": rows, "series": args.series, "shard_rows": args.shard_rows,
              "cap_gib": args.cap_gib,
              "dataset_mb": round(sum(f.stat().st_size for f in dataset.iterdir()) / 2**20, 1),
              "modes": summary}
    out = ROOT / "benchmarks" / "results" / "shard_forecast.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    key = f"{args.series}x{args.length}" + (f"-cap{args.cap_gib:g}GiB" if cap else "")
    previous[key] = result
    out.write_text(json.dumps(previous, indent=2) + "\n")
    print(json.dumps({m: {k: v for k, v in s.items() if k != "runs"}
                      for m, s in summary.items()}, indent=2))


if __name__ == "__main__":
    main()
