"""Hierarchical forecasting on aus_retail (state x industry): MASE per level of base and
reconciled forecasts, deepcast next to hierarchicalforecast's own pipeline on the same data.

    .venv/bin/python benchmarks/hierarchy.py deepcast [--models theta,linear]
    $PEERS/sf/bin/python benchmarks/hierarchy.py peer      # statsforecast + hierarchicalforecast
    .venv/bin/python benchmarks/hierarchy.py table

Data: ``benchmarks/data/aus_retail_hierarchy.parquet``, the 148 bottom series that end in
2018-12 (4 end in 2010 or 2013 and cannot be reconciled with the others' forecast dates),
aggregated to the total, 8 states and 20 industries (a grouped hierarchy: 177 series).
Test span: the last 12 months of every series, one forecast origin (h = 12). MASE: the
mean absolute error over the test span divided by the series' in-sample seasonal naive
MAE (season 12), then the mean over the series of a level: the same formula both sides.

``deepcast``: each model is fit once on every level (deepcast's hierarchy: a static
``level`` column), its base forecasts reconciled with each method (MinT's shrunk
covariance from the model's selection-backtest residuals).
``peer``: AutoETS base forecasts (statsforecast) reconciled by hierarchicalforecast
(BottomUp, MinTrace ols / wls_struct / mint_shrink on the in-sample residuals).
Results: ``benchmarks/results/hierarchy_{deepcast,peer}.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "aus_retail_hierarchy.parquet"
RESULTS = ROOT / "benchmarks" / "results"
H, M = 12, 12
LEVELS = [[], ["state"], ["industry"]]
METHODS = ["bottom_up", "min_trace_ols", "min_trace_wls_struct", "min_trace_shrink"]


def bottom() -> pd.DataFrame:
    """The bottom series that end with the others (2018-12)."""
    df = pd.read_parquet(DATA).sort_values(["unique_id", "ds"])
    last = df.groupby("unique_id")["ds"].transform("max")
    return df[last == last.max()].reset_index(drop=True)


def mase_by_level(fc: pd.DataFrame, full: pd.DataFrame, level: pd.Series) -> dict[str, float]:
    """Mean MASE per level of forecasts ``fc`` (unique_id, ds, yhat) against ``full``."""
    out: dict[str, list[float]] = {}
    for uid, s in full.groupby("unique_id", sort=False):
        y = s["y"].to_numpy(np.float64)
        train, test = y[:-H], y[-H:]
        scale = np.mean(np.abs(train[M:] - train[:-M]))
        f = fc[fc["unique_id"] == uid].sort_values("ds")["yhat"].to_numpy(np.float64)
        out.setdefault(level[uid], []).append(float(np.mean(np.abs(test - f)) / scale))
    return {k: round(float(np.mean(v)), 4) for k, v in out.items()}


def run_deepcast(models: list[str]) -> dict:
    from deepcast.features.hierarchy import LEVEL, aggregate
    from deepcast.pipelines.config import ENTRY_MODELS, parse_config
    from deepcast.pipelines.levels import attach_reconciler
    from deepcast.pipelines.modelling import (
        fit_model,
        holdout_predictions,
        prepare,
        training_settings,
    )
    from deepcast.pipelines.selection import model_backtest, selection_windows

    raw = {"name": "bench-hier", "data": {"path": str(DATA), "freq": "MS",
                                          "season_length": M, "static": ["state", "industry"]},
           "features": {"lookback": 36, "horizon": H}, "models": [{"type": "naive"}],
           "training": {"max_epochs": 30, "patience": 5, "seed": 0},
           "evaluation": {"test_size": H, "plots": False},
           "hierarchy": {"columns": ["state", "industry"], "levels": LEVELS}}
    cfg = parse_config(raw)
    full = aggregate(bottom(), cfg.hierarchy.spec())
    level = full.drop_duplicates("unique_id").set_index("unique_id")[LEVEL]
    prep = prepare(full, cfg)
    windows = selection_windows(prep, cfg)
    out: dict = {"series": int(level.size), "windows": windows, "models": {}}
    for name in models:
        entry = ENTRY_MODELS[name](type=name)
        t0 = time.perf_counter()
        predictor, _, _ = fit_model(entry, prep, training_settings(cfg))
        backtest = model_backtest(entry, prep, cfg, windows)
        scores = {"base": mase_by_level(holdout_predictions(predictor, prep), full, level)}
        for method in METHODS:
            rcfg = cfg.model_copy(update={"hierarchy": cfg.hierarchy.model_copy(
                update={"method": method})})
            attach_reconciler(predictor, prep.df, rcfg, backtest)
            scores[method] = mase_by_level(holdout_predictions(predictor, prep), full, level)
            predictor.reconciler = None
        out["models"][name] = {"mase": scores, "seconds": round(time.perf_counter() - t0, 1)}
        print(name, json.dumps(scores), flush=True)
    return out


def run_peer() -> dict:
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.methods import BottomUp, MinTrace
    from hierarchicalforecast.utils import aggregate
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    df = bottom().assign(total="total")
    spec = [["total"], ["total", "state"], ["total", "industry"],
            ["total", "state", "industry"]]
    Y, S, tags = aggregate(df[["total", "state", "industry", "ds", "y"]], spec)
    train = Y[Y.groupby("unique_id").cumcount(ascending=False) >= H]
    t0 = time.perf_counter()
    sf = StatsForecast(models=[AutoETS(season_length=M)], freq="MS", n_jobs=1)
    base = sf.forecast(df=train, h=H, fitted=True)
    fitted = sf.forecast_fitted_values()
    rec = HierarchicalReconciliation([BottomUp(), MinTrace("ols"), MinTrace("wls_struct"),
                                      MinTrace("mint_shrink")])
    out_df = rec.reconcile(Y_hat_df=base, Y_df=fitted, S_df=S, tags=tags)
    rename = {"total": "total", "total/state": "state", "total/industry": "industry",
              "total/state/industry": "state/industry"}  # deepcast's level names
    level = pd.Series({uid: rename[name] for name, ids in tags.items() for uid in ids})
    names = {"base": "AutoETS", "bottom_up": "AutoETS/BottomUp",
             "min_trace_ols": "AutoETS/MinTrace_method-ols",
             "min_trace_wls_struct": "AutoETS/MinTrace_method-wls_struct",
             "min_trace_shrink": "AutoETS/MinTrace_method-mint_shrink"}
    scores = {k: mase_by_level(out_df.rename(columns={c: "yhat"})[["unique_id", "ds", "yhat"]],
                               Y, level) for k, c in names.items()}
    print(json.dumps(scores), flush=True)
    return {"series": int(level.size), "models": {"AutoETS": {
        "mase": scores, "seconds": round(time.perf_counter() - t0, 1)}}}


def table() -> str:
    rows = []
    for side in ("deepcast", "peer"):
        path = RESULTS / f"hierarchy_{side}.json"
        if not path.is_file():
            continue
        for model, r in json.loads(path.read_text())["models"].items():
            for method, by_level in r["mase"].items():
                rows.append({"side": side, "model": model, "method": method, **by_level})
    return pd.DataFrame(rows).to_string(index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["deepcast", "peer", "table"])
    ap.add_argument("--models", default="theta,linear")
    args = ap.parse_args()
    if args.what == "table":
        print(table())
        return
    out = run_deepcast(args.models.split(",")) if args.what == "deepcast" else run_peer()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"hierarchy_{args.what}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
