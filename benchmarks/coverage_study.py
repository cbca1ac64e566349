"""Why the 80 % conformal bands over-cover on backtests: coverage per window and under
other calibration rules, from one backtest of a coverage pipeline.

    .venv/bin/python benchmarks/coverage_study.py benchmarks/coverage_vic_elec.yaml \
        --windows 104 --score-from 52 --json benchmarks/results/coverage_study_vic.json
    .venv/bin/python benchmarks/coverage_study.py benchmarks/coverage_aus_retail.yaml --windows 8 \
        --json benchmarks/results/coverage_study_aus.json

Runs the pipeline's backtest once (validated data, the YAML's models) and scores every
window ``j >= --score-from`` (default: the first window with enough residuals) under:

- ``expanding``: deepcast's rule, calibrated on all windows before ``j`` (per horizon step,
  normalised by the series' seasonal naive MAE, pooled over series);
- ``last_K``: the same on the ``K = --score-from`` windows before ``j`` only;
- ``per_series``: each series' scores divided by its own mean score over the windows
  before ``j`` (locally weighted conformal, Lei et al. 2018), then pooled per step.

It also prints the median normalised score per window: a falling median means the early
windows' residuals were larger than the later ones' (non-exchangeable errors), which
over-covers whatever the rank.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def _quantile(scores: np.ndarray, level: float) -> float:
    """The conformal quantile (finite-sample rank) of finite ``scores``; inf if too few."""
    s = np.sort(scores[np.isfinite(scores)])
    r = math.ceil((len(s) + 1) * level / 100)
    return float(s[r - 1]) if r <= len(s) else math.inf


def coverage(s: np.ndarray, level: float, first: int, rule: str, span: int) -> list[float]:
    """Per scored window, the share of points whose normalised score ``s`` (series,
    window, step) is inside the band ``rule`` calibrates on earlier windows."""
    n, k, h = s.shape
    out = []
    for j in range(first, k):
        lo = j - span if rule == "last_K" else 0
        past = s[:, lo:j, :]
        if rule == "per_series":
            sigma = np.nanmean(past, axis=(1, 2))
            sigma = np.where(sigma > 0, sigma, np.nan)
            q = np.array([_quantile((past[:, :, t] / sigma[:, None]).ravel(), level)
                          for t in range(h)])
            inside = s[:, j, :] <= q[None, :] * sigma[:, None]
        else:
            q = np.array([_quantile(past[:, :, t].ravel(), level) for t in range(h)])
            inside = s[:, j, :] <= q[None, :]
        out.append(float(np.mean(inside)))
    return out


def main() -> None:
    import deepcast
    from deepcast.pipelines.backtest import run_backtest
    from deepcast.pipelines.runs.base import PLAIN, RunInputs, validated

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline")
    ap.add_argument("--windows", type=int, help="evaluation.backtest.n_windows instead")
    ap.add_argument("--score-from", type=int, default=None,
                    help="first scored window (and K of last_K); default: 1")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = deepcast.load_config(args.pipeline)
    if args.windows:
        bt = cfg.evaluation.backtest.model_copy(update={"n_windows": args.windows})
        cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(
            update={"backtest": bt})})
    data = validated(cfg, RunInputs(report_dir="/tmp/coverage_study_report"), PLAIN)
    cfg, df = data.cfg, data.clean
    bt = cfg.evaluation.backtest
    need = bt.n_windows * (bt.step or cfg.features.horizon) + cfg.features.lookback + 1
    df = df[df["unique_id"].map(df["unique_id"].value_counts()) >= need]  # as backtest
    res = run_backtest(df, cfg)
    first = args.score_from or 1
    table = {}
    for name, fc in res.forecasts.items():
        fc = fc.sort_values(["unique_id", "window", "h"])
        n, k = res.scale.shape
        y = fc["y"].to_numpy(np.float64).reshape(n, k, -1)
        yhat = fc["yhat"].to_numpy(np.float64).reshape(n, k, -1)
        s = np.abs(y - yhat) / res.scale[:, :, None]
        row = {"median_score_per_window": np.round(np.median(s, axis=(0, 2)), 3).tolist()}
        for level in (80, 95):
            for rule in ("expanding", "last_K", "per_series"):
                cov = coverage(s, level, first, rule, first)
                row[f"{rule}_{level}"] = round(100 * float(np.mean(cov)), 1)
        table[name] = row
        print(name, {k: v for k, v in row.items() if k != "median_score_per_window"})
        print("  median normalised score per window:", row["median_score_per_window"])
    if args.json:
        args.json.write_text(json.dumps({"pipeline": args.pipeline, "windows": k,
                                         "score_from": first, "models": table}, indent=1))


if __name__ == "__main__":
    main()
