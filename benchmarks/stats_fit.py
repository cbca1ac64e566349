"""Fit time and accuracy of deepcast's statistical models (statsmodels ETS / Theta, pmdarima
auto_arima: ``forecasting/statistical.py``) against statsforecast's AutoETS / AutoTheta /
AutoARIMA, one core each, on the same M3 monthly series (last 18 points held out).

    .venv/bin/python benchmarks/stats_fit.py compare [--n 40] [--rounds 3]
        [--methods ets,theta,arima]

``compare`` runs both sides in interleaved subprocesses (deepcast in this interpreter,
statsforecast in ``$PEERS/sf`` from ``setup_peers.sh``; statsforecast pins pandas < 3 so it
cannot share deepcast's environment) and writes ``benchmarks/results/stats_fit.json``:
per method the median seconds per series of each library, their ratio, and the mean MASE.
``run LIB`` is one side (what ``compare`` starts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "m3_monthly.parquet"
OUT = ROOT / "benchmarks" / "results" / "stats_fit.json"
H, M = 18, 12


def _series(n: int) -> list[tuple[str, np.ndarray]]:
    df = pd.read_parquet(DATA).sort_values(["unique_id", "ds"])
    ids = sorted(df["unique_id"].unique())
    pick = np.random.default_rng(0).choice(ids, n, replace=False)  # the same n each side
    return [(str(i), df.loc[df["unique_id"] == i, "y"].to_numpy(np.float64)) for i in pick]


def _forecasters(lib: str) -> dict:
    if lib == "deepcast":
        from deepcast.forecasting import statistical

        return {"ets": lambda y: statistical.ets(y, H, M),
                "theta": lambda y: statistical.theta(y, H, M),
                "arima": lambda y: statistical.arima(y, H, M)}
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    models = {"ets": AutoETS, "theta": AutoTheta, "arima": AutoARIMA}
    return {k: (lambda y, c=c: c(season_length=M).forecast(y=y, h=H)["mean"])
            for k, c in models.items()}


def run(lib: str, n: int, methods: list[str]) -> dict:
    """Seconds per series and mean MASE of each method on ``n`` series, one core."""
    warnings.simplefilter("ignore")
    fns, out = _forecasters(lib), {}
    series = _series(n)
    for method in methods:  # imports and compilation outside the timing
        fns[method](10 + np.sin(np.arange(60.0)) + np.arange(60.0) / 10)
    for method in methods:
        seconds, mase = 0.0, []
        for _, y in series:
            train, test = y[:-H], y[-H:]
            t0 = time.perf_counter()
            yhat = np.asarray(fns[method](train))
            seconds += time.perf_counter() - t0
            scale = np.mean(np.abs(train[M:] - train[:-M]))
            mase.append(float(np.mean(np.abs(test - yhat)) / scale))
        out[method] = {"s_per_series": seconds / n, "mase": float(np.mean(mase))}
    return out


def compare(n: int, rounds: int, methods: list[str]) -> dict:
    peers = Path(os.environ.get("PEERS", "/work/peers"))
    pythons = {"deepcast": sys.executable, "statsforecast": str(peers / "sf" / "bin" / "python")}
    runs: dict[str, list[dict]] = {lib: [] for lib in pythons}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    for r in range(rounds):
        for lib, python in (pythons.items() if r % 2 == 0 else reversed(pythons.items())):
            cmd = [python, __file__, "run", lib, "--n", str(n), "--methods", ",".join(methods)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            runs[lib].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(lib, runs[lib][-1], flush=True)
    table = {}
    for m in methods:
        row = {lib: statistics.median(x[m]["s_per_series"] for x in runs[lib]) for lib in runs}
        table[m] = {"deepcast_s_per_series": row["deepcast"],
                    "statsforecast_s_per_series": row["statsforecast"],
                    "time_ratio": row["deepcast"] / row["statsforecast"],
                    "deepcast_mase": runs["deepcast"][0][m]["mase"],
                    "statsforecast_mase": runs["statsforecast"][0][m]["mase"]}
    return {"series": n, "rounds": rounds, "horizon": H, "season": M, "methods": table}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["run", "compare"])
    p.add_argument("lib", nargs="?", default="deepcast", choices=["deepcast", "statsforecast"])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--methods", default="ets,theta,arima")
    a = p.parse_args()
    methods = a.methods.split(",")
    if a.mode == "run":
        print(json.dumps(run(a.lib, a.n, methods)))
        return
    result = compare(a.n, a.rounds, methods)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
