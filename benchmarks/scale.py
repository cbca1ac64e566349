"""Scale: peak memory and time of each step on a large panel (default 10M rows, 10,000 series).

    python benchmarks/scale.py [--series 10000] [--length 1000] [--family linear]

validate (Great Expectations) -> features (scaler, padding, window positions) -> one training
epoch -> forecast of every series, in one process through the pure core. Before each step the
peak-RSS counter is reset (Linux ``clear_refs``), so each step reports its own peak; the raw
data size is the in-memory size of the long frame (``unique_id, ds, y``). The series-count
check (nothing quadratic in series) is a second run with 10x fewer series and the same
length: every step should take about 10x less time. Results: ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from flows.cli import configure_environment  # noqa: E402

configure_environment()

from speed import long_frame, peak_rss_mb, reset_peak_rss, rss_mb, synthetic_panel  # noqa: E402


def run(n_series: int, length: int, family: str) -> dict:
    import numpy as np  # noqa: F401

    from features.schema import ColumnSpec, coerce_long_frame
    from pipelines.config import parse_config
    from pipelines.train import fit_model, prepare, user_frame
    from pipelines.validate import validate_long_frame

    cfg = parse_config({
        "name": "scale", "data": {"freq": 1, "season_length": 12, "path": "unused.parquet"},
        "features": {"lookback": 36, "horizon": 18},
        "models": [{"type": family}],
        "training": {"max_epochs": 1, "batch_size": 1024, "checkpoint": False},
        "evaluation": {"test_size": 18},
    })
    steps: dict[str, dict] = {}
    base = rss_mb()

    def step(name: str, fn):
        reset_peak_rss()
        before, t0 = rss_mb(), time.perf_counter()
        out = fn()
        steps[name] = {"seconds": round(time.perf_counter() - t0, 2),
                       "peak_rss_mb": round(peak_rss_mb(), 1),
                       "peak_above_start_mb": round(peak_rss_mb() - base, 1),
                       "rss_before_mb": round(before, 1)}
        print(name, steps[name], flush=True)
        return out

    data = {"raw": step("generate", lambda: long_frame(synthetic_panel(n_series, length)))}
    raw_mb = data["raw"].memory_usage(deep=True).sum() / 2**20
    data["frame"] = step("coerce", lambda: coerce_long_frame(
        data.pop("raw"), ColumnSpec("unique_id", "ds", "y", 1)))
    with tempfile.TemporaryDirectory() as tmp:
        clean, report = step("validate", lambda: validate_long_frame(data.pop("frame"), cfg,
                                                                     tmp))
    assert report.success, report.summary()
    prep = step("features", lambda: prepare(clean, cfg))
    entry = cfg.models[0]
    predictor = step("train_1_epoch", lambda: fit_model(entry, prep, cfg)[0])
    history = user_frame(clean, cfg)
    fc = step("forecast", lambda: predictor.predict(history))
    assert len(fc) == n_series * 18
    peak = max(s["peak_rss_mb"] for s in steps.values())
    return {"series": n_series, "length": length, "rows": n_series * length,
            "family": family, "raw_data_mb": round(raw_mb, 1),
            "rss_after_imports_mb": round(base, 1), "steps": steps,
            "peak_rss_mb": peak, "peak_over_raw": round(peak / raw_mb, 2),
            "peak_above_imports_over_raw": round((peak - base) / raw_mb, 2),
            "training_windows": int(len(prep.train_starts))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--length", type=int, default=1000)
    ap.add_argument("--family", default="linear")
    args = ap.parse_args()
    import great_expectations  # noqa: F401  (imports count in the baseline, not a step)
    import tensorflow  # noqa: F401

    res = run(args.series, args.length, args.family)
    print(json.dumps(res, indent=1))
    path = ROOT / "benchmarks" / "results" / "scale.json"
    out = json.loads(path.read_text()) if path.is_file() else {}
    out[f"{args.series}x{args.length}"] = res
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
