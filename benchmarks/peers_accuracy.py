"""Peer forecasts of the accuracy benchmark's test spans (run in a peer virtualenv).

    $PEERS/sf/bin/python benchmarks/peers_accuracy.py sf SET [--validation] [--models A,B]
    $PEERS/nf/bin/python benchmarks/peers_accuracy.py nf SET [--validation] [--max-steps N]
        [--models NHITS,NBEATS,TiDE,LSTM] [--early-stop]

SET is m3-monthly, m3-quarterly, m3-yearly, taylor, vic-elec-12w, epf-12w, or one of the
held-out checks tourism-monthly|quarterly|yearly and m1-monthly|quarterly|yearly (the ``name:``
of the benchmark YAMLs; the horizon, test span, season and lookback below repeat theirs).
statsforecast: SeasonalNaive, AutoETS, AutoTheta, AutoARIMA; neuralforecast: NHITS, NBEATS,
TiDE, LSTM with the same input length as deepcast. ``--early-stop`` gives neuralforecast
what deepcast has: the last horizon before each cut-off held out for validation (``val_size
= h``, as deepcast's ``training.val_size`` default), checked every 50 steps, stopping after
5 checks without improvement, within ``--max-steps`` (then 1000). The test span is covered
by ``test_size / h`` consecutive origins, models fit once before the first
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
    "m3-yearly": dict(path="m3_yearly.parquet", h=6, test=6, season=1, freq=1, lookback=12),
    "taylor": dict(path="taylor.parquet", h=48, test=336, season=48, freq="30min",
                   lookback=336),
    "vic-elec-12w": dict(path="vic_elec_12w.parquet", h=48, test=336, season=48,
                         freq="30min", lookback=96),
    "epf-12w": dict(path="epf_fr_be_12w.parquet", h=24, test=168, season=24, freq="h",
                    lookback=48),
    # held-out checks of models: auto (lookback: its default, two seasons or two horizons)
    **{f"{comp}-{kind}": dict(path=f"{comp}_{kind}.parquet", h=h, test=h, season=m, freq=1,
                              lookback=max(2 * m, 2 * h))
       for comp, kind, m, h in [("tourism", "monthly", 12, 24), ("tourism", "quarterly", 4, 8),
                                ("tourism", "yearly", 1, 4), ("m1", "monthly", 12, 18),
                                ("m1", "quarterly", 4, 8), ("m1", "yearly", 1, 6)]},
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


SF_MODELS = "SeasonalNaive,AutoETS,AutoTheta,AutoARIMA"
NF_MODELS = "NHITS,LSTM"


def run_sf(df: pd.DataFrame, s: dict, models: str = SF_MODELS) -> pd.DataFrame:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    out = []
    chosen = {"SeasonalNaive": lambda: SeasonalNaive(s["season"]),
              "AutoETS": lambda: AutoETS(season_length=s["season"]),
              "AutoTheta": lambda: AutoTheta(season_length=s["season"]),
              "AutoARIMA": lambda: AutoARIMA(season_length=s["season"])}
    for model in (chosen[name]() for name in models.split(",")):
        t0 = time.perf_counter()
        sf = StatsForecast(models=[model], freq=s["freq"], n_jobs=os.cpu_count())
        cv = sf.cross_validation(df=df, h=s["h"], n_windows=s["test"] // s["h"],
                                 step_size=s["h"], refit=False)
        name = str(model)
        out.append(cv[["unique_id", "ds", name]].rename(columns={name: "yhat"}).assign(
            model=name, fit_s=time.perf_counter() - t0))
        print(name, f"{time.perf_counter() - t0:.1f} s", flush=True)
    return pd.concat(out, ignore_index=True)


def run_nf(df: pd.DataFrame, s: dict, max_steps: int, models: str = NF_MODELS,
           early_stop: bool = False) -> pd.DataFrame:
    import logging

    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM, NBEATS, NHITS, TiDE

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    common = dict(h=s["h"], input_size=s["lookback"], max_steps=max_steps,
                  scaler_type="standard", random_seed=0, enable_progress_bar=False,
                  enable_model_summary=False, logger=False)
    if early_stop:
        common.update(early_stop_patience_steps=5, val_check_steps=50)
    out = []
    chosen = {"NHITS": NHITS, "NBEATS": NBEATS, "TiDE": TiDE, "LSTM": LSTM}
    for model in (chosen[name](**common) for name in models.split(",")):
        t0 = time.perf_counter()
        nf = NeuralForecast(models=[model], freq=s["freq"])
        cv = nf.cross_validation(df=df, n_windows=s["test"] // s["h"], step_size=s["h"],
                                 refit=False, val_size=s["h"] if early_stop else 0)
        name = str(model)
        label = f"{name}-es" if early_stop else name
        out.append(cv[["unique_id", "ds", name]].rename(columns={name: "yhat"}).assign(
            model=label, fit_s=time.perf_counter() - t0))
        print(label, f"{time.perf_counter() - t0:.1f} s", flush=True)
    return pd.concat(out, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib", choices=("sf", "nf"))
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--validation", action="store_true")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="neuralforecast steps (default 500; 1000 with --early-stop)")
    ap.add_argument("--models", help=f"models to run (sf: {SF_MODELS}, the default; nf: "
                    f"NHITS,NBEATS,TiDE,LSTM, default {NF_MODELS})")
    ap.add_argument("--early-stop", action="store_true",
                    help="neuralforecast: validation on the last h points, early stopping")
    args = ap.parse_args()
    s = SETS[args.set]
    df = load(args.set, args.validation)
    steps = args.max_steps or (1000 if args.early_stop else 500)
    fc = (run_sf(df, s, args.models or SF_MODELS) if args.lib == "sf"
          else run_nf(df, s, steps, args.models or NF_MODELS, args.early_stop))
    fc["unique_id"] = fc["unique_id"].astype(str)
    RESULTS.mkdir(parents=True, exist_ok=True)
    lib = "statsforecast" if args.lib == "sf" else "neuralforecast"
    suffix = ("_es" if args.early_stop else "") + ("_validation" if args.validation else "")
    path = RESULTS / f"forecasts_{args.set}_{lib}{suffix}.parquet"
    fc.to_parquet(path, index=False)
    print("->", path)


if __name__ == "__main__":
    main()
