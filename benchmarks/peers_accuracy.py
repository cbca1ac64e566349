"""Peer forecasts of the accuracy benchmark's test spans (run in a peer virtualenv).

    $PEERS/sf/bin/python benchmarks/peers_accuracy.py sf SET [--validation]
    $PEERS/nf/bin/python benchmarks/peers_accuracy.py nf SET [--validation] [--max-steps N]
        [--models NHITS,LSTM]

SET is m3-monthly, m3-quarterly or taylor (the ``name:`` of the benchmark YAMLs; the horizon,
test span, season and lookback below repeat theirs). statsforecast: SeasonalNaive, AutoETS,
AutoTheta; neuralforecast: NHITS and LSTM with the same input length as deepcast. The test
span is covered by ``test_size / h`` consecutive origins, models fit once before the first
(``cross_validation(refit=False)``), as ``accuracy.py`` does for deepcast. Writes
``benchmarks/results/forecasts_<SET>_<lib>[_validation].parquet`` (``unique_id, ds, model,
yhat, fit_s``); ``accuracy.py`` scores it with deepcast's metric code.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SETS = {
    "m3-monthly": dict(path="m3_monthly.parquet", h=18, test=18, season=12, freq=1,
                       lookback=36),
    "m3-quarterly": dict(path="m3_quarterly.parquet", h=8, test=8, season=4, freq=1,
                         lookback=16),
    "taylor": dict(path="taylor.parquet", h=48, test=336, season=48, freq="30min",
                   lookback=336),
}


def load(name: str, validation: bool) -> pd.DataFrame:
    s = SETS[name]
    df = pd.read_parquet(ROOT / "benchmarks" / "data" / s["path"])
    df = df.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    if s["freq"] != 1:
        df["ds"] = pd.to_datetime(df["ds"])
    df["y"] = df["y"].astype("float64")
    if validation:  # drop the official test span: score the span before it
        pos = df.groupby("unique_id").cumcount(ascending=False)
        df = df[pos >= s["test"]].reset_index(drop=True)
    return df


def run_sf(df: pd.DataFrame, s: dict) -> pd.DataFrame:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, SeasonalNaive

    out = []
    for model in (SeasonalNaive(s["season"]), AutoETS(season_length=s["season"]),
                  AutoTheta(season_length=s["season"])):
        t0 = time.perf_counter()
        sf = StatsForecast(models=[model], freq=s["freq"], n_jobs=os.cpu_count())
        cv = sf.cross_validation(df=df, h=s["h"], n_windows=s["test"] // s["h"],
                                 step_size=s["h"], refit=False)
        name = str(model)
        out.append(cv[["unique_id", "ds", name]].rename(columns={name: "yhat"}).assign(
            model=name, fit_s=time.perf_counter() - t0))
        print(name, f"{time.perf_counter() - t0:.1f} s", flush=True)
    return pd.concat(out, ignore_index=True)


def run_nf(df: pd.DataFrame, s: dict, max_steps: int, models: str = "NHITS,LSTM"
           ) -> pd.DataFrame:
    import logging

    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM, NHITS

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    common = dict(h=s["h"], input_size=s["lookback"], max_steps=max_steps,
                  scaler_type="standard", random_seed=0, enable_progress_bar=False,
                  enable_model_summary=False, logger=False)
    out = []
    chosen = {"NHITS": NHITS, "LSTM": LSTM}
    for model in (chosen[name](**common) for name in models.split(",")):
        t0 = time.perf_counter()
        nf = NeuralForecast(models=[model], freq=s["freq"])
        cv = nf.cross_validation(df=df, n_windows=s["test"] // s["h"], step_size=s["h"],
                                 refit=False)
        name = str(model)
        out.append(cv[["unique_id", "ds", name]].rename(columns={name: "yhat"}).assign(
            model=name, fit_s=time.perf_counter() - t0))
        print(name, f"{time.perf_counter() - t0:.1f} s", flush=True)
    return pd.concat(out, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib", choices=("sf", "nf"))
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--validation", action="store_true")
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--models", default="NHITS,LSTM", help="neuralforecast models to run")
    args = ap.parse_args()
    s = SETS[args.set]
    df = load(args.set, args.validation)
    fc = run_sf(df, s) if args.lib == "sf" else run_nf(df, s, args.max_steps, args.models)
    fc["unique_id"] = fc["unique_id"].astype(str)
    RESULTS.mkdir(parents=True, exist_ok=True)
    lib = "statsforecast" if args.lib == "sf" else "neuralforecast"
    path = RESULTS / f"forecasts_{args.set}_{lib}{'_validation' if args.validation else ''}.parquet"
    fc.to_parquet(path, index=False)
    print("->", path)


if __name__ == "__main__":
    main()
