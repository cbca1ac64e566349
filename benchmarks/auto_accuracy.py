"""``models: auto`` on a benchmark set's test span, as a user runs it: data and horizon only.

    python benchmarks/auto_accuracy.py benchmarks/m3_quarterly.yaml [--preset fast|best]
                                       [--validation] [--time-limit S] [--workdir DIR]
                                       [--set evaluation.backtest.refit=true --tag +refit]

From the set's pipeline only the data description is kept (``data:`` with its path,
frequency, season length and short-series policy, and ``features.horizon``), with
``models: auto`` and a holdout of one horizon with 80 and 95 % bands
(``evaluation.test_size``, ``conformal``); everything else is deepcast's default. The
training part (the series without the official test span; with ``--validation`` without
the span before it too) goes through
``deepcast.train`` -- validation, the preset's models, the selection backtest, the greedy
ensemble, the gate, MLflow (a SQLite store in the work folder) -- and the test span is
forecast by ``deepcast.forecast`` with the registered champion, from each origin of the
span (consecutive origins, each from the actual history up to it, when the span is longer
than the horizon). The forecast is scored by the same metric code as every other row of
``results/accuracy_<set>[_validation].csv``, where it is saved as ``auto-<preset>``; the
coverage of the forecast's conformal bands on the span is printed (and saved in the JSON
beside it) with the train run's own table of candidates.
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

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from accuracy import RESULTS, load_frame, results_path, save, score_forecast  # noqa: E402

from deepcast.features.schema import DS, ID, Y  # noqa: E402
from deepcast.forecasting import metrics  # noqa: E402
from deepcast.forecasting.conformal import interval_columns  # noqa: E402
from deepcast.forecasting.evaluate import split_holdout  # noqa: E402
from deepcast.pipelines.config import load_config  # noqa: E402


def auto_config(pipeline: Path, preset: str, time_limit: float | None) -> dict:
    """The set's data description and horizon, ``models: auto``, and the smallest
    evaluation section a user writes: a holdout of one horizon, 80 and 95 % bands."""
    raw = yaml.safe_load(pipeline.read_text())
    data = dict(raw["data"])
    data["path"] = str((pipeline.parent / data["path"]).resolve())
    auto = {"preset": preset} | ({"time_limit": time_limit} if time_limit else {})
    return {"name": f"{raw['name']}-auto-{preset}", "data": data,
            "features": {"horizon": raw["features"]["horizon"]},
            "models": "auto", "auto": auto,
            "evaluation": {"test_size": raw["features"]["horizon"], "conformal": [80, 95]}}


def forecast_span(cfg: dict, clean: pd.DataFrame, test_size: int, horizon: int,
                  model: str = "champion") -> pd.DataFrame:
    """The champion's forecasts of the last ``test_size`` points of every series, from
    consecutive origins ``horizon`` apart, each from the actual history up to it (every
    column of the forecast: ``yhat``, the bands, ``fallback``)."""
    import deepcast

    pos = clean.groupby(ID, sort=False).cumcount(ascending=False).to_numpy()
    parts, cut = [], test_size
    while cut > 0:
        parts.append(deepcast.forecast(cfg, model, history=clean[pos >= cut]).forecast)
        cut -= horizon
    keys = clean.loc[pos < test_size, [ID, DS]]
    fc = pd.concat(parts, ignore_index=True).astype({DS: clean[DS].dtype})
    return keys.merge(fc, on=[ID, DS], how="left", validate="one_to_one")


def coverage(fc: pd.DataFrame, clean: pd.DataFrame) -> dict[str, float]:
    """Share of the span's actual values inside each ``yhat_lo_L``/``yhat_hi_L`` band
    (the bands' own coverage metric, over every point the band covers)."""
    y = fc.merge(clean[[ID, DS, Y]], on=[ID, DS], how="left")[Y].to_numpy(np.float64)
    out = {}
    for level in (c.removeprefix("yhat_lo_") for c in fc.columns if c.startswith("yhat_lo_")):
        lo, hi = (fc[c].to_numpy(np.float64) for c in interval_columns(float(level)))
        ok = ~np.isnan(lo) & ~np.isnan(hi)
        out[level] = float(metrics.coverage(y[ok], lo[ok], hi[ok])) if ok.any() \
            else float("nan")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline", help="the set's pipeline YAML (its data and horizon)")
    ap.add_argument("--preset", choices=["fast", "best"], default="fast")
    ap.add_argument("--validation", action="store_true",
                    help="score the span before the official test span instead")
    ap.add_argument("--time-limit", type=float, help="auto.time_limit, seconds")
    ap.add_argument("--workdir", help="keep the MLflow store here (default: temporary)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a variant: set a dotted config key (value read as YAML)")
    ap.add_argument("--tag", default="", help="suffix of the row's name (a variant)")
    args = ap.parse_args()
    pipeline = Path(args.pipeline).resolve()
    set_cfg = load_config(pipeline)  # the set's name, test span and season (for scoring)
    test_size = set_cfg.evaluation.test_size
    # every series with one point before the span: one too short to train is forecast by
    # the fallback (seasonal naive, else naive), as a user's would be
    clean = load_frame(set_cfg, args.validation, min_length=test_size + 1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepcast-auto-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.chdir(work)
    import deepcast

    cfg = auto_config(pipeline, args.preset, args.time_limit)
    for item in args.set:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    train_part = split_holdout(clean, test_size)[0]
    try:
        t0 = time.perf_counter()
        trained = deepcast.train(cfg, train_part)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        # the gate may keep a first model that does not beat seasonal naive on the holdout
        # from champion (a challenger then): what models: auto trained is still scored
        served = "champion" if trained.decision is None or trained.decision.promoted \
            else "challenger"
        fc = forecast_span(cfg, clean, test_size, set_cfg.features.horizon, served)
        forecast_s = time.perf_counter() - t0
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    scores = score_forecast(fc[[ID, DS, "yhat"]], clean, set_cfg)
    fallback = int(fc["fallback"].fillna("").astype(str).ne("").sum()) \
        if "fallback" in fc.columns else 0
    label = f"auto-{args.preset}{args.tag}"
    row = {"library": "deepcast", "model": label, "family": "auto",
           "mase": scores["mase"], "smape": scores["smape"], "fit_s": round(train_s, 1),
           "epochs": 0, "forecast_s": round(forecast_s, 1)}
    path = results_path(set_cfg.name, args.validation)
    save([row], path)
    report = {"set": set_cfg.name, "validation": args.validation, "preset": args.preset,
              "variant": args.set, "served": served,
              **row, "coverage": coverage(fc, clean), "fallback_rows": fallback,
              "decision": trained.decision.to_dict() if trained.decision else None,
              "table": trained.table}
    out = RESULTS / f"auto_{set_cfg.name}_{args.preset}{args.tag.replace('+', '_')}" \
        f"{'_validation' if args.validation else ''}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: report[k] for k in ("set", "preset", "mase", "smape", "fit_s",
                                             "coverage", "fallback_rows")}))
    print(f"-> {path}, {out}")
    return 0 if np.isfinite(scores["mase"]) else 1


if __name__ == "__main__":
    sys.exit(main())
