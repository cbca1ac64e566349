"""Scale on Dask: validate -> one training epoch of sampled windows -> forecast, shard by
shard on a 2-worker LocalCluster, from a partitioned Parquet dataset.

    python benchmarks/scale_shards.py --series 10000 --length 100     # 1M rows
    python benchmarks/scale_shards.py --series 100000 --length 100    # 10M rows
    python benchmarks/scale_shards.py --series 100000 --length 100 --runner serial
    python benchmarks/scale_shards.py --series 100000 --length 100 --tracked
    python benchmarks/scale_shards.py --series 100000 --length 500 --cap-gib 4 [--runner serial]
    python benchmarks/scale_shards.py --series 100000 --length 300 --memory-limit 3GiB

The panel is made from real series: series ``i`` is a stretch of ``length`` months of one
of the 152 Australian retail series shipped with the demo (``pipelines/data``; series
``i mod 152``, from a seeded random start, cycled where the real series is shorter), times
a seeded log-normal level factor, plus 2 % noise. It is written by a separate process as
Parquet files of at most 1M rows each. The run is the default user path: datetime ``ds``
(monthly), ``calendar: auto`` (month features as future covariates), a series-ID
embedding, per-series scaling, holdout of one horizon.

With ``--tracked``, the training is ``deepcast train``'s whole run from shards
(``pipelines.runs.train_from_shards``: MLflow runs, the per-series table, the drift profile,
the registry and the gate, seasonal naive and the champion scored on every shard) into a
fresh SQLite store, and the forecast uses the registered model.

Steps, through ``pipelines.runs.train_shards.train_in_shards`` (the driver plans shards
from the ID column only; each worker reads, validates with the GE suite and prepares its
shards and keeps them): ``prepare-shards`` (read + validate + features), ``fit`` (one epoch
of ``windows_per_epoch`` windows sampled across the shards, the validation windows scored),
``score`` (holdout, per shard), then ``forecast`` (each worker reads its shards again and
writes one Parquet file per shard, as ``deepcast forecast --output FOLDER`` does). Before
each step the peak-RSS counters of the driver and of every worker are reset (Linux
``clear_refs``); each step reports its wall time and the peaks. Results:
``benchmarks/results/scale_shards.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speed import panel_parser, peak_rss_mb, reset_peak_rss, rss_mb, save_result  # noqa: E402

FILE_ROWS = 1_000_000


def generate(n_series: int, length: int, folder: Path, seed: int = 0) -> None:
    """Write the panel (see the module docstring) as Parquet files of whole series."""
    import pandas as pd

    real = pd.read_csv(ROOT / "pipelines" / "data" / "aus_retail.csv")
    bases = [g["y"].to_numpy(np.float64) for _, g in real.groupby("unique_id", sort=True)]
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2000-01-01", periods=length, freq="MS").to_numpy()
    per_file = max(1, FILE_ROWS // length)
    folder.mkdir(parents=True)
    for f, lo in enumerate(range(0, n_series, per_file)):
        ids = np.arange(lo, min(n_series, lo + per_file))
        values = np.empty((len(ids), length))
        for row, i in enumerate(ids):
            base = bases[i % len(bases)]
            start = rng.integers(0, len(base))
            values[row] = np.resize(np.roll(base, -start), length)
        values *= rng.lognormal(0, 1, (len(ids), 1))
        values *= 1 + 0.02 * rng.standard_normal(values.shape)
        pd.DataFrame({"unique_id": np.repeat([f"s{i:07d}" for i in ids], length),
                      "ds": np.tile(ds, len(ids)), "y": values.reshape(-1)}
                     ).to_parquet(folder / f"part-{f:05d}.parquet", index=False)


CGROUPS = Path("/sys/fs/cgroup/memory")  # Linux cgroup v1 memory controller (root only)


def cap_memory(name: str, gib: float, pid: int | None = None) -> None:
    """Put process ``pid`` (default: this one) in its own cgroup of ``gib`` GiB: past it,
    the kernel's OOM killer ends the process, as a container's limit would."""
    group = CGROUPS / f"deepcast-bench-{name}"
    group.mkdir(exist_ok=True)
    (group / "memory.limit_in_bytes").write_text(str(int(gib * 2**30)))
    (group / "cgroup.procs").write_text(str(pid or os.getpid()))


def _worker_reset() -> float:
    reset_peak_rss()
    return rss_mb()


def _worker_peak() -> float:
    return peak_rss_mb()


def _warm_worker() -> float:
    import great_expectations  # noqa: F401
    import tensorflow  # noqa: F401

    return rss_mb()


def forecast_shard(job, bundle: bytes, folder: str) -> int:
    """One shard's forecast into its own Parquet file (in a worker; the model loaded once
    per process)."""
    from deepcast.pipelines import shard_parts
    from deepcast.pipelines.forecast import write_atomic
    from deepcast.pipelines.runs.forecast_shards import read_rows

    predictor = shard_parts.unpacked(bundle)
    fc = predictor.predict(read_rows(job.cfg, job.shard, job.source))
    write_atomic(fc, Path(folder) / f"part-{job.shard.index:05d}.parquet")
    return len(fc)


class TimedSteps:
    """``Steps`` that time each step and record the driver's and workers' peak RSS."""

    def __init__(self, client, pool=None) -> None:
        self.client, self.steps, self._pool = client, {}, pool

    def run(self, name: str, fn, *args, **kwargs):
        reset_peak_rss()
        workers = self.client.run if self.client is not None else lambda fn: {}
        before = workers(_worker_reset)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        peaks = workers(_worker_peak)
        key = name.split("-")[0] if name.startswith(("fit-", "score-")) and \
            name != "score-reference" else name
        self.steps[key] = {
            "seconds": round(time.perf_counter() - t0, 2),
            "driver_peak_mb": round(peak_rss_mb(), 1),
            "worker_peak_mb": [round(v, 1) for v in peaks.values()],
            "worker_rss_before_mb": [round(v, 1) for v in before.values()]}
        print(key, self.steps[key], flush=True)
        return out

    io = run

    def mapper(self, cfg):
        return None

    def publish(self, cfg, result):
        return []

    def pool(self, cfg):
        from contextlib import nullcontext

        return nullcontext(self._pool)


def config(folder: Path, args, runner: str):
    from deepcast.pipelines.config import parse_config

    return parse_config({
        "name": "scale-shards",
        "data": {"path": str(folder), "freq": "MS", "season_length": 12},
        "features": {"lookback": 24, "horizon": 12, "id_embedding": 8},
        "models": [{"type": args.family}],
        "training": {"max_epochs": 1, "batch_size": 1024, "checkpoint": False,
                     "windows_per_epoch": args.windows_per_epoch, "seed": 0},
        "evaluation": {"test_size": 12, "plots": False},
        "execution": {"runner": runner, "workers": 2, "shard_rows": args.shard_rows,
                      "memory_limit": args.memory_limit},
    })


def run_serial(folder: Path, rows: int, args) -> dict:
    """The same steps as ``deepcast train`` and ``deepcast forecast`` take them, in this
    process: the whole panel read, validated and prepared, one epoch of the same sample
    size, the holdout scored, every series forecast."""
    from deepcast.pipelines.modelling import (
        evaluate,
        fit_model,
        prepare,
        training_settings,
        user_frame,
    )
    from deepcast.pipelines.runs.base import RunInputs, validated

    cfg = config(folder, args, "serial")
    driver_base = rss_mb()
    steps = TimedSteps(None)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = validated(cfg, RunInputs(report_dir=tmp), steps)
        prep = steps.run("prepare", prepare, data.clean, data.cfg)
        predictor = steps.run("fit", fit_model, data.cfg.models[0], prep,
                              training_settings(data.cfg))[0]
        metrics = steps.run("score", evaluate, predictor, prep)[0]
        history = user_frame(data.clean, data.cfg)
        del prep, data
        fc = steps.run("forecast", predictor.predict, history)
        total = time.perf_counter() - t0
    return {"runner": "serial", "rows": rows, "series": int(fc["unique_id"].nunique()),
            "seconds": round(total, 1), "rows_per_second": round(rows / total),
            "holdout_mase": round(metrics["mase"], 4),
            "driver_rss_after_imports_mb": round(driver_base, 1), "steps": steps.steps}


def run(folder: Path, rows: int, args) -> dict:
    from deepcast.flows.shard_pool import DaskShardPool
    from deepcast.pipelines import shard_parts
    from deepcast.pipelines.runs.base import RunInputs
    from deepcast.pipelines.runs.train_shards import train_in_shards

    cfg = config(folder, args, "dask")
    driver_base = rss_mb()
    with DaskShardPool(cfg.execution) as pool, tempfile.TemporaryDirectory() as tmp:
        if args.cap_gib:  # each worker in a cgroup of its own (the driver is in one)
            for i, pid in enumerate(pool.client.run(os.getpid).values()):
                cap_memory(f"worker{i}", args.cap_gib, pid)
        worker_base = pool.client.run(_warm_worker)
        steps = TimedSteps(pool.client, pool)
        t0 = time.perf_counter()
        inputs = RunInputs(report_dir=str(Path(tmp) / "reports"))
        if args.tracked:  # deepcast train's run: MLflow runs, the registry, the gate
            predictor, series, mase = _tracked(cfg, inputs, steps, tmp)
            windows = None  # (in the run's notes)
        else:
            result = train_in_shards(cfg, inputs, pool, steps)
            fit = result.fits[0]
            predictor, series, mase = fit.predictor, result.series, fit.metrics["mase"]
            windows = result.train_windows
        from deepcast.pipelines.runs.forecast_shards import plan

        shards = plan(cfg, RunInputs(), cfg.data.id_col)
        jobs = [shard_parts.PartJob(cfg, s, str(folder), None, tmp) for s in shards]
        out = Path(tmp) / "forecast"
        out.mkdir()
        written = steps.run("forecast", pool.run, forecast_shard, jobs,
                            shard_parts.bundle_bytes(predictor), str(out))
        total = time.perf_counter() - t0
    assert sum(written) == series * 12, (sum(written), series)
    return {"runner": "dask", "tracked": args.tracked, "rows": rows, "series": series,
            "shards": len(shards),
            "shard_rows": args.shard_rows, "family": args.family,
            "windows_per_epoch": args.windows_per_epoch,
            "training_windows": windows, "seconds": round(total, 1),
            "rows_per_second": round(rows / total), "holdout_mase": round(mase, 4),
            "driver_rss_after_imports_mb": round(driver_base, 1),
            "worker_rss_after_imports_mb": [round(v, 1) for v in worker_base.values()],
            "steps": steps.steps}


def _tracked(cfg, inputs, steps, tmp: str):
    """``deepcast train``'s run from shards into a fresh MLflow store: the served model
    (the registered candidate), the series count and its holdout MASE."""
    from deepcast.pipelines.runs import store
    from deepcast.pipelines.runs.train_from_shards import train_from_shards

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    result = train_from_shards(cfg, inputs, steps)
    _, model = store.load_model(store.open_tracker(cfg), "challenger")
    row = next(r for r in result.table if r["model"] == cfg.models[0].label)
    return model.predictor, result.n_series, row["mase"]


def main() -> None:
    ap = panel_parser(__doc__, generate, 100)
    if ap is None:
        return
    ap.add_argument("--shard-rows", type=int, default=1_000_000)
    ap.add_argument("--windows-per-epoch", type=int, default=200_000)
    ap.add_argument("--keep", help="folder to generate the panel into once and keep")
    ap.add_argument("--runner", choices=["dask", "serial"], default="dask",
                    help="serial: the in-memory path on the same data, for the ratio")
    ap.add_argument("--memory-limit", help="Dask's memory_limit per worker, e.g. 3GiB")
    ap.add_argument("--tracked", action="store_true", help="the whole `deepcast train` run "
                    "from shards (MLflow runs, registry, gate) instead of its untracked core")
    ap.add_argument("--cap-gib", type=float, help="memory cap of this process and of each "
                    "worker (cgroup v1, root): where the serial path fails and Dask does not")
    args = ap.parse_args()
    import great_expectations  # noqa: F401  (imports count in the baseline, not a step)
    import tensorflow  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "panel"
        if not folder.exists():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--generate", str(args.series),
                            str(args.length), str(folder)], check=True)
            print(f"generated in {time.perf_counter() - t0:.0f} s", flush=True)
        if args.cap_gib:
            cap_memory(args.runner, args.cap_gib)
        from deepcast.flows.cli import configure_environment

        configure_environment()
        res = (run if args.runner == "dask" else run_serial)(folder, args.series * args.length,
                                                             args)
    res["cores"] = os.cpu_count()
    prefix = "serial-" if args.runner != "dask" else "tracked-" if args.tracked else ""
    save_result("scale_shards.json", f"{prefix}{args.series}x{args.length}", res)


if __name__ == "__main__":
    main()
