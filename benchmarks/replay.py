"""Replay N days of a real series through the nightly ``retrain`` flow, in one process.

    python benchmarks/replay.py [--days 30] [--start 2014-01-01] [--pipeline P.yaml]
                                [--workdir DIR] [--json REPORT.json]

The history before ``--start`` is the data on day 0. Each simulated day appends that day's
row to the live data file and runs the ``retrain`` flow (validate, drift check, train,
gate, forecast) exactly as a schedule would, writing ``forecast_<day>.csv``. Afterwards it
checks what an operator would: no failed cycle, one forecast file per day (each starting the
day after), every promotion matched by the gate's own rule on the recorded scores (and the
registry's ``champion`` alias moved exactly then), and no process left behind (descendants
of this process before and after, the Prefect API server stopped). MLflow runs go to a
SQLite store in the work folder; Prefect runs on a temporary local API.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepcast.flows.cli import configure_environment  # noqa: E402

configure_environment()


def descendants(pid: int | None = None) -> dict[int, str]:
    """pid -> command line of every living descendant of ``pid`` (default: this process),
    read from /proc."""
    root = pid or os.getpid()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                try:
                    cmd = (Path("/proc") / str(child) / "cmdline").read_bytes()
                except OSError:
                    continue
                found[child] = cmd.replace(b"\0", b" ").decode(errors="replace").strip()
                frontier.append(child)
    return found


def gate_says(d: dict, margin: float) -> bool:
    """The gate's rule (:func:`deepcast.pipelines.promote.decide`) re-applied to the scores the run
    recorded: does the recorded decision follow from them?"""
    from deepcast.pipelines.promote import decide

    promoted, _ = decide(d["candidate_score"], d["champion_score"],
                         d["champion_version"] or None, margin, d["seasonal_naive_score"],
                         d["candidate"] == "seasonal_naive")
    return promoted


def prepare(workdir: Path, pipeline: Path, start: pd.Timestamp) -> tuple[Path, pd.DataFrame]:
    """The live pipeline YAML (data: live.csv in ``workdir``) holding the history before
    ``start``; the rows still to replay."""
    raw = yaml.safe_load(pipeline.read_text())
    source = (pipeline.parent / raw["data"]["path"]).resolve()
    full = pd.read_csv(source)
    ds = pd.to_datetime(full[raw["data"].get("time_col", "ds")])
    full[ds < start].to_csv(workdir / "live.csv", index=False)
    raw["data"]["path"] = "live.csv"
    live = workdir / "replay.yaml"
    live.write_text(yaml.safe_dump(raw, sort_keys=False))
    return live, full[ds >= start]


def replay(days: int, start: str, pipeline: Path, workdir: Path) -> dict:
    from prefect.testing.utilities import prefect_test_harness

    from deepcast.features.errors import DeepcastError
    from deepcast.flows.retrain import retrain
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.tracking import Tracker

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    (workdir / "mlruns").mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # validation reports land in workdir/mlruns/validation
    live, future = prepare(workdir, pipeline, pd.Timestamp(start))
    cfg = load_config(live)
    margin = cfg.promotion.margin
    if len(future) < days:
        raise SystemExit(f"only {len(future)} days after {start} in the data")
    out = workdir / "forecasts" / "forecast_{date}.csv"
    before = descendants()
    cycles, during = [], []
    t_start = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        tracker = Tracker(cfg.name)
        for i in range(days):
            row = future.iloc[[i]]
            row.to_csv(live.parent / "live.csv", mode="a", header=False, index=False)
            day = str(row.iloc[0][cfg.data.time_col])[:10]
            champion_before = tracker.registry.aliases().get("champion")
            t0 = time.perf_counter()
            cycle = {"day": day, "status": "failed", "error": ""}
            try:
                result = retrain(pipeline=str(live), output=str(out), as_of=day)
                d = result.train.decision.to_dict()
                champion_after = tracker.registry.aliases().get("champion")
                moved = champion_after != champion_before
                cycle.update(
                    status=result.status, candidate=d["candidate"],
                    candidate_score=d["candidate_score"], champion_score=d["champion_score"],
                    seasonal_naive_score=d["seasonal_naive_score"], promoted=d["promoted"],
                    gate_rule=gate_says(d, margin),
                    alias_moved=moved and champion_after == d["candidate_version"],
                    champion=champion_after, drift=result.drift_summary.split(":")[0],
                    forecast=result.forecast.output)
            except DeepcastError as exc:
                cycle["error"] = str(exc).splitlines()[0]
            except Exception as exc:  # noqa: BLE001 - a failed cycle is what is measured
                cycle["error"] = f"{type(exc).__name__}: {exc}"
            cycle["seconds"] = round(time.perf_counter() - t0, 1)
            cycles.append(cycle)
            during.append(len(descendants()))
            print(json.dumps(cycle, default=str), flush=True)
    total = time.perf_counter() - t_start
    time.sleep(1.0)  # let terminated children be reaped
    after = descendants()

    ok = [c for c in cycles if c["status"] in ("promoted", "kept")]
    files = sorted((workdir / "forecasts").glob("forecast_*.csv"))
    good_files = 0
    for c in ok:
        fc = pd.read_csv(c["forecast"])
        first = pd.Timestamp(c["day"]) + pd.Timedelta(days=1)
        good_files += int(pd.Timestamp(fc["ds"].min()) == first
                          and len(fc) == cfg.features.horizon)
    promotions = [c for c in ok if c["promoted"]]
    return {
        "days": days, "start": start, "pipeline": str(pipeline),
        "failed_cycles": len(cycles) - len(ok),
        "forecast_files": len(files), "forecast_files_valid": good_files,
        "promotions": len(promotions),
        "promotion_days": [c["day"] for c in promotions],
        "decisions_matching_gate_rule": sum(c["promoted"] == c["gate_rule"] for c in ok),
        "promotions_moving_alias": sum(c["alias_moved"] for c in promotions),
        "alias_moved_without_promotion": sum(
            1 for c in ok if not c["promoted"] and c["alias_moved"]),
        "drift_warnings": sum(c["drift"].startswith("drift warning") for c in ok),
        "children_before": len(before), "children_during_max": max(during, default=0),
        "children_during_min": min(during, default=0),
        "leaked_processes": {str(k): v for k, v in after.items() if k not in before},
        "total_seconds": round(total, 1),
        "seconds_per_cycle": round(total / max(days, 1), 1),
        "cycles": cycles,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days to replay (default 30)")
    parser.add_argument("--start", default="2014-01-01", help="first replayed day")
    parser.add_argument("--pipeline", default=str(ROOT / "benchmarks" / "replay.yaml"))
    parser.add_argument("--workdir", help="keep the runs, forecasts and reports here "
                        "(default: a temporary folder, removed)")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="deepcast-replay-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = replay(args.days, args.start, Path(args.pipeline).resolve(), workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = {k: v for k, v in report.items() if k != "cycles"}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    fine = (report["failed_cycles"] == 0 and report["forecast_files_valid"] == args.days
            and report["decisions_matching_gate_rule"] == args.days - report["failed_cycles"]
            and report["promotions_moving_alias"] == report["promotions"]
            and not report["alias_moved_without_promotion"]
            and not report["leaked_processes"])
    return 0 if fine else 1


if __name__ == "__main__":
    sys.exit(main())
