"""Replay N days of a real series through the nightly ``retrain`` flow, in one process.

    python benchmarks/replay.py [--days 30] [--start 2014-01-01] [--pipeline P.yaml]
                                [--modes cold warm] [--workdir DIR] [--json REPORT.json]
                                [--epoch-times] [--profile DIR]

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
import cProfile
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
    """The gate's rule (:func:`deepcast.pipelines.gate.decide`) re-applied to the scores the run
    recorded: does the recorded decision follow from them?"""
    from deepcast.pipelines.gate import decide

    promoted, _ = decide(d["candidate_score"], d["champion_score"],
                         d["champion_version"] or None, margin, d["seasonal_naive_score"],
                         d["candidate"] == "seasonal_naive")
    return promoted


def prepare(workdir: Path, pipeline: Path, start: pd.Timestamp, mode: str
            ) -> tuple[Path, pd.DataFrame]:
    """The live pipeline YAML of ``mode`` (data: live_<mode>.csv in ``workdir``) holding the
    history before ``start``; the rows still to replay. ``warm`` sets
    ``training.warm_start: champion``; ``cold`` leaves it unset. Each mode has its own
    pipeline name, so its own experiment and registered model in the shared store."""
    raw = yaml.safe_load(pipeline.read_text())
    source = (pipeline.parent / raw["data"]["path"]).resolve()
    full = pd.read_csv(source)
    ds = pd.to_datetime(full[raw["data"].get("time_col", "ds")])
    full[ds < start].to_csv(workdir / f"live_{mode}.csv", index=False)
    raw["data"]["path"] = f"live_{mode}.csv"
    raw["name"] = f"{raw['name']}-{mode}"
    training = raw.setdefault("training", {})
    if mode == "warm":
        training.setdefault("warm_start", "champion")
    else:
        training.pop("warm_start", None)
    live = workdir / f"replay_{mode}.yaml"
    live.write_text(yaml.safe_dump(raw, sort_keys=False))
    return live, full[ds >= start]


EPOCHS: list[tuple[str, list[float]]] = []  # (network, its epochs' seconds) per fit


def time_epochs() -> None:
    """Record every Keras fit's epoch times in ``EPOCHS`` (``--epoch-times``): the first
    epoch of a fit holds its tracing or XLA compilation."""
    import keras

    class Stamps(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.stamps = [time.perf_counter()]

        def on_epoch_end(self, epoch, logs=None):
            self.stamps.append(time.perf_counter())

        def on_train_end(self, logs=None):
            EPOCHS.append((self.model.name, [round(b - a, 3) for a, b in
                                             zip(self.stamps, self.stamps[1:], strict=False)]))

    fit = keras.Model.fit

    def timed_fit(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=[*(callbacks or []), Stamps()], **kwargs)

    keras.Model.fit = timed_fit


def night(live: Path, cfg, row: pd.DataFrame, out: Path, tracker,
          profile: Path | None = None) -> dict:
    """Append ``row`` to the live data of pipeline ``live`` (loaded as ``cfg``) and run one
    ``retrain`` cycle: what it did, its per-model holdout scores and its time. With
    ``profile``, the cycle runs under cProfile and its statistics are written there."""
    from deepcast.features.errors import DeepcastError
    from deepcast.flows.retrain import retrain

    margin = cfg.promotion.margin
    row.to_csv(live.parent / cfg.data.path, mode="a", header=False, index=False)
    day = str(row.iloc[0][cfg.data.time_col])[:10]
    champion_before = tracker.registry.aliases().get("champion")
    t0 = time.perf_counter()
    cycle = {"day": day, "status": "failed", "error": ""}
    profiler = cProfile.Profile() if profile else None
    try:
        if profiler:
            profiler.enable()
        try:
            result = retrain(pipeline=str(live), output=str(out), as_of=day)
        finally:
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)
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
            forecast=result.forecast.output,
            models={r["model"]: {k: r.get(k) for k in (cfg.evaluation.metric, "epochs",
                                                        "fit_s", "start")}
                    for r in result.train.table})
    except DeepcastError as exc:
        cycle["error"] = str(exc).splitlines()[0]
    except Exception as exc:  # noqa: BLE001 - a failed cycle is what is measured
        cycle["error"] = f"{type(exc).__name__}: {exc}"
    cycle["seconds"] = round(time.perf_counter() - t0, 1)
    if EPOCHS:  # --epoch-times: this night's fits, in order (selection fit, final fit)
        cycle["epoch_seconds"] = [{"network": n, "epochs": e} for n, e in EPOCHS]
        EPOCHS.clear()
    return cycle


def replay(days: int, start: str, pipeline: Path, workdir: Path, modes: list[str],
           profile: Path | None = None) -> dict[str, dict]:
    """Replay ``days`` nights in every mode, interleaved night by night (so that both see
    the same machine load); a report per mode. With ``profile``, each night's cProfile
    statistics go to ``profile/<mode>_<night>.prof``."""
    from prefect.testing.utilities import prefect_test_harness

    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.tracking import Tracker

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    (workdir / "mlruns").mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # validation reports land in workdir/mlruns/validation
    lives = {m: prepare(workdir, pipeline, pd.Timestamp(start), m) for m in modes}
    future = lives[modes[0]][1]
    if len(future) < days:
        raise SystemExit(f"only {len(future)} days after {start} in the data")
    cfgs = {m: load_config(lives[m][0]) for m in modes}
    outs = {m: workdir / f"forecasts_{m}" / "forecast_{date}.csv" for m in modes}
    before = descendants()
    cycles: dict[str, list[dict]] = {m: [] for m in modes}
    during = []
    t_start = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        trackers = {m: Tracker(cfgs[m].name) for m in modes}
        for i in range(days):
            for m in modes:
                prof = profile / f"{m}_{i + 1:02d}.prof" if profile else None
                cycle = night(lives[m][0], cfgs[m], future.iloc[[i]], outs[m], trackers[m],
                              prof)
                cycles[m].append(cycle)
                during.append(len(descendants()))
                print(json.dumps({"mode": m, **cycle}, default=str), flush=True)
    total = time.perf_counter() - t_start
    time.sleep(1.0)  # let terminated children be reaped
    after = descendants()
    leaked = {str(k): v for k, v in after.items() if k not in before}
    return {m: summary(cycles[m], outs[m].parent, cfgs[m], days, start, pipeline)
            | {"children_before": len(before), "children_during_max": max(during, default=0),
               "children_during_min": min(during, default=0), "leaked_processes": leaked,
               "total_seconds_all_modes": round(total, 1)}
            for m in modes}


def summary(cycles: list[dict], folder: Path, cfg, days: int, start: str, pipeline: Path
            ) -> dict:
    """What an operator checks after ``days`` nights of one mode."""
    ok = [c for c in cycles if c["status"] in ("promoted", "kept")]
    files = sorted(folder.glob("forecast_*.csv"))
    good_files = 0
    for c in ok:
        fc = pd.read_csv(c["forecast"])
        first = pd.Timestamp(c["day"]) + pd.Timedelta(days=1)
        good_files += int(pd.Timestamp(fc["ds"].min()) == first
                          and len(fc) == cfg.features.horizon)
    promotions = [c for c in ok if c["promoted"]]
    seconds = [c["seconds"] for c in cycles]
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
        "total_seconds": round(sum(seconds), 1),
        "seconds_per_cycle": round(sum(seconds) / max(days, 1), 1),
        "median_cycle_seconds": float(pd.Series(seconds).median()) if seconds else None,
        "mean_candidate_score": float(pd.Series(
            [c["candidate_score"] for c in ok]).mean()) if ok else None,
        "cycles": cycles,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days to replay (default 30)")
    parser.add_argument("--start", default="2014-01-01", help="first replayed day")
    parser.add_argument("--pipeline", default=str(ROOT / "benchmarks" / "replay.yaml"))
    parser.add_argument("--modes", nargs="+", choices=["cold", "warm"], default=["cold"],
                        help="cold: every night from scratch (default); warm: "
                        "training.warm_start: champion; both: interleaved night by night")
    parser.add_argument("--workdir", help="keep the runs, forecasts and reports here "
                        "(default: a temporary folder, removed)")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--epoch-times", action="store_true", help="record every fit's "
                        "epoch times in the report (the first epoch holds the tracing)")
    parser.add_argument("--profile", help="write each night's cProfile statistics to this "
                        "folder (<mode>_<night>.prof; read with pstats)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="deepcast-replay-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    if args.epoch_times:
        time_epochs()
    out = Path(args.json).resolve() if args.json else None  # the run changes directory
    try:
        reports = replay(args.days, args.start, Path(args.pipeline).resolve(), workdir,
                         list(dict.fromkeys(args.modes)),
                         Path(args.profile).resolve() if args.profile else None)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({m: {k: v for k, v in r.items() if k != "cycles"}
                      for m, r in reports.items()}, indent=2))
    if len(reports) == 2:
        cold, warm = reports["cold"], reports["warm"]
        print(f"warm / cold cycle time: {warm['total_seconds'] / cold['total_seconds']:.2f} "
              f"(medians {warm['median_cycle_seconds']} / {cold['median_cycle_seconds']} s)")
    if out is not None:
        out.write_text(json.dumps(reports, indent=2, default=str))
    fine = all(r["failed_cycles"] == 0 and r["forecast_files_valid"] == args.days
               and r["decisions_matching_gate_rule"] == args.days - r["failed_cycles"]
               and r["promotions_moving_alias"] == r["promotions"]
               and not r["alias_moved_without_promotion"] and not r["leaked_processes"]
               for r in reports.values())
    return 0 if fine else 1


if __name__ == "__main__":
    sys.exit(main())
