"""Holdout quality and fit time of every model family on one pipeline's data.

    python benchmarks/family_quality.py [PIPELINE.yaml] [--epochs N] [--families a,b]
                                        [--jit both|on|off]

Trains each family with its default options (plus the pipeline's ``training`` section, with
``max_epochs`` from ``--epochs``) on the pipeline's data, scores it on the same holdout as
``deepcast train`` (MASE, sMAPE, skill vs seasonal naive) and reports seconds per epoch.
``--jit both`` fits every neural family twice, with and without XLA, and reports the ratio.
No MLflow, no Prefect: the pure core, so the figures are the models' own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepcast.flows.cli import configure_environment  # noqa: E402

configure_environment()

from deepcast.forecasting.metrics import skill  # noqa: E402
from deepcast.forecasting.models import families  # noqa: E402
from deepcast.pipelines.config import ENTRY_MODELS, load_config  # noqa: E402
from deepcast.pipelines.ingest import ingest  # noqa: E402
from deepcast.pipelines.modelling import (  # noqa: E402
    evaluate,
    fit_model,
    prepare,
    training_settings,
)
from deepcast.pipelines.validate import validate_long_frame  # noqa: E402


def _stamp(times: list[float]):
    """Epoch hook recording the wall time at the end of every epoch."""
    return lambda epoch, logs: times.append(time.perf_counter())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline", nargs="?", default=str(ROOT / "pipelines" / "demo.yaml"))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--families", default=",".join(sorted(ENTRY_MODELS)))
    ap.add_argument("--jit", choices=("both", "on", "off"), default="on")
    args = ap.parse_args()

    cfg = load_config(args.pipeline)
    training = cfg.training.model_copy(update={"checkpoint": False, **(
        {"max_epochs": args.epochs} if args.epochs else {})})
    cfg = cfg.model_copy(update={"training": training})
    with tempfile.TemporaryDirectory() as tmp:
        clean, report = validate_long_frame(ingest(cfg.data), cfg, tmp)
    if not report.success:
        sys.exit(report.summary())
    prep = prepare(clean, cfg)
    print(f"{cfg.name}: {prep.panel.n_series} series, {len(clean)} rows, "
          f"{len(prep.train_starts)} training windows; max_epochs {training.max_epochs}")
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.jit]
    rows, reference = [], None
    for family in ["seasonal_naive"] + [f for f in args.families.split(",")
                                        if f != "seasonal_naive"]:
        entry = ENTRY_MODELS[family](type=family)
        for jit in modes if families()[family].trainable else [None]:
            c = cfg if jit is None else cfg.model_copy(update={"training": training.model_copy(
                update={"jit_compile": jit})})
            t0 = time.perf_counter()
            epochs: list[float] = []
            predictor, history, fit_s = fit_model(entry, prep, training_settings(c),
                                                  on_epoch=_stamp(epochs))
            scores, _ = evaluate(predictor, prep, c.evaluation.conformal)
            reference = reference or scores
            n = len(history.get("loss", []))
            # first epoch includes tracing/compilation: report it apart from the steady ones
            steady = ((epochs[-1] - epochs[0]) / (len(epochs) - 1)) if len(epochs) > 1 else None
            rows.append({"family": family, "xla": {None: "", True: "on", False: "off"}[jit],
                         "mase": scores["mase"], "smape": scores["smape"],
                         "skill_mase": skill(scores["mase"], reference["mase"]),
                         "epochs": n, "fit_s": round(fit_s, 1),
                         "first_epoch_s": round(epochs[0] - t0, 2) if epochs else None,
                         "epoch_s": round(steady, 3) if steady else None})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1),
                  flush=True)
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.jit == "both":
        t = table[table.xla != ""].pivot(index="family", columns="xla", values="epoch_s")
        t["speedup_xla"] = t["off"] / t["on"]
        print("\nsteady-state seconds per epoch:\n" + t.to_string(float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
