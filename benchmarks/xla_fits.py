"""XLA on short fits: each model's final fit seconds in a `train`, with and without XLA.

    python benchmarks/xla_fits.py [--pipeline benchmarks/replay_warm.yaml]
                                  [--epochs 5 20] [--models linear mlp nhits] [--repeats 1]
                                  [--json out.json]

Runs the pipeline's neural models (seasonal naive dropped) through ``deepcast.train`` in a
fresh process per setting (``DEEPCAST_JIT_COMPILE=on`` / ``off``, ``max_epochs`` from
``--epochs``, patience = epochs so every fit runs them all), interleaved and repeated, and
prints the median ``fit_s`` of each model per setting. The difference between epoch counts
gives the seconds per epoch, the rest is the fit's fixed cost (XLA's compile among it): the
figures behind ``jit_compile: auto``'s planned-steps rule (``forecasting/runtime.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, tempfile
import deepcast
cfg = deepcast.load_config(sys.argv[1])
epochs, models = int(sys.argv[2]), sys.argv[3].split(",")
cfg = cfg.model_copy(update={
    "training": cfg.training.model_copy(update={"max_epochs": epochs, "patience": epochs}),
    "models": [m for m in cfg.models if m.type in models]})
r = deepcast.train(cfg, report_dir=tempfile.mkdtemp())
print(json.dumps({row["model"]: row["fit_s"] for row in r.table}))
"""


def one(pipeline: Path, jit: str, epochs: int, models: list[str]) -> dict[str, float]:
    """{model: final fit seconds} of one train in a fresh process and a fresh store."""
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "DEEPCAST_JIT_COMPILE": jit,
               "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"}
        done = subprocess.run([sys.executable, "-c", CHILD, str(pipeline), str(epochs),
                               ",".join(models)], cwd=work, env=env, capture_output=True,
                              text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", default=str(ROOT / "benchmarks" / "replay_warm.yaml"))
    ap.add_argument("--epochs", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--models", nargs="+", default=["linear", "mlp", "nhits"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    pipeline = Path(args.pipeline).resolve()
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(args.repeats):
        for epochs in args.epochs:
            for jit in ("on", "off"):  # interleaved: both see the same machine load
                runs.setdefault((jit, epochs), []).append(one(pipeline, jit, epochs,
                                                              args.models))
    rows = [{"xla": jit, "epochs": epochs,
             **{m: round(statistics.median(r[m] for r in found), 2) for m in args.models}}
            for (jit, epochs), found in runs.items()]
    print(f"{'xla':>4} {'epochs':>6} " + " ".join(f"{m:>8}" for m in args.models))
    for row in rows:
        print(f"{row['xla']:>4} {row['epochs']:>6} "
              + " ".join(f"{row[m]:>8.2f}" for m in args.models))
    if args.json:
        Path(args.json).write_text(json.dumps({"pipeline": str(pipeline), "rows": rows},
                                              indent=1))


if __name__ == "__main__":
    main()
