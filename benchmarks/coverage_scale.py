"""Which scale to normalise conformal scores by: each series' whole history (the MASE
denominator) or its recent volatility (the seasonal naive MAE of the last L differences
before the cut-off), from one backtest of a coverage pipeline.

    .venv/bin/python benchmarks/coverage_scale.py benchmarks/coverage_aus_retail.yaml 8
    .venv/bin/python benchmarks/coverage_scale.py benchmarks/coverage_vic_elec.yaml 104

Runs the pipeline's backtest on ``N_WINDOWS`` cut-offs (series too short for the first one
left out) and scores the 80 % and 95 % bands of every window after the first, each
calibrated on the ``K`` windows before it (``K``: as ``train`` calibrates with the YAML,
``PipelineConfig.calibration_windows``), per horizon step, with every scale rule: the whole
history, and the last ``max(k * season_length, horizon)`` differences for k = 1, 2, 4
(deepcast's rule is k = 2). Prints coverage in percent per model and rule.
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def _quantile(scores: np.ndarray, level: float) -> float:
    """The conformal quantile (finite-sample rank) of finite ``scores``; NaN if too few."""
    s = np.sort(scores[np.isfinite(scores)])
    r = math.ceil((len(s) + 1) * level / 100)
    return float(s[r - 1]) if r <= len(s) else math.nan


def coverage(s: np.ndarray, level: float, k_cal: int) -> float:
    """Mean share of points inside the band, over windows with a band at every step;
    ``s`` (series, window, step) normalised scores."""
    out = []
    for j in range(1, s.shape[1]):
        past = s[:, max(0, j - k_cal):j, :]
        q = np.array([_quantile(past[:, :, t].ravel(), level) for t in range(s.shape[2])])
        if not np.isnan(q).any():
            out.append(np.mean(s[:, j, :] <= q[None, :]))
    return round(100 * float(np.mean(out)), 1)


def main() -> None:
    import deepcast
    from deepcast.features.windows import panel_from_frame
    from deepcast.forecasting import metrics
    from deepcast.pipelines.backtest import run_backtest
    from deepcast.pipelines.config import override_backtest
    from deepcast.pipelines.runs.base import PLAIN, RunInputs, validated

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline")
    ap.add_argument("n_windows", type=int)
    args = ap.parse_args()
    cfg = override_backtest(deepcast.load_config(args.pipeline), n_windows=args.n_windows)
    df = validated(cfg, RunInputs(report_dir="/tmp/coverage_scale_report"), PLAIN).clean
    need = args.n_windows * cfg.lengths.step + cfg.min_train_length
    df = df[df["unique_id"].map(df["unique_id"].value_counts()) >= need]
    df = df.reset_index(drop=True)
    res = run_backtest(df, cfg)
    panel, m, h = panel_from_frame(df), cfg.data.season_length, cfg.features.horizon
    scales = {"history": res.scale}
    whole = res.scale
    for k in (1, 2, 4):  # the whole history's where the recent stretch is flat, as deepcast
        span = max(k * m, h)
        recent = np.stack([metrics.seasonal_scale(panel, res.cutoffs[:, j], m, last=span)
                           for j in range(res.n_windows)], axis=1)
        scales[f"last {span}"] = np.where(np.isfinite(recent) & (recent > 0), recent, whole)
    print(f"{panel.n_series} series, {res.n_windows} windows, calibrated on the last "
          f"{cfg.calibration_windows}; coverage 80 / 95 % per scale rule")
    for name, fc in res.forecasts.items():
        fc = fc.sort_values(["unique_id", "window", "h"])
        shape = (*res.scale.shape, h)
        err = np.abs(fc["y"].to_numpy(np.float64) - fc["yhat"].to_numpy(np.float64))
        row = {rule: tuple(coverage(err.reshape(shape) / sc[:, :, None], lv,
                                    cfg.calibration_windows) for lv in (80, 95))
               for rule, sc in scales.items()}
        print(name, row)


if __name__ == "__main__":
    main()
