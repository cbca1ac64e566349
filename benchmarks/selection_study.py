"""Which model should ``models: auto`` serve? Every candidate of one run, scored on the span.

    python benchmarks/selection_study.py benchmarks/m1_yearly.yaml [--validation]
    python benchmarks/selection_study.py --rules        # compare the rules on every saved run

The first form trains ``models: auto`` as ``auto_accuracy.py`` does (data and horizon
only), then registers every candidate the run logged (families, baselines, ensembles) as a
version of the same registered model and forecasts the span with each, as a user would with
that version. Saved per candidate: its selection scores (each backtest window, then each
holdout origin: what ``train`` chose on) and its MASE on the span. Results:
``results/selection_<set>[_validation].json``.

``--rules`` replays selection rules on those files: the served pick of each rule, and its
span MASE against the pick of today's rule (the lowest mean selection score). A rule is
chosen on the ``_validation`` files (the span before the official test span) and only then
read on the test files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from accuracy import RESULTS, load_frame, score_forecast  # noqa: E402
from auto_accuracy import auto_config, forecast_span  # noqa: E402

from deepcast.features.schema import DS, ID, Y  # noqa: E402
from deepcast.forecasting.evaluate import split_holdout  # noqa: E402
from deepcast.pipelines.config import load_config  # noqa: E402


def candidate_runs(parent_run_id: str) -> list[dict]:
    """Every nested run of the train with a logged model: name, run id, model URI and its
    selection scores (backtest windows, then holdout origins)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_run(parent_run_id).info.experiment_id
    runs = mlflow.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = "
                              f"'{parent_run_id}'", output_format="list")
    out = []
    for run in runs:
        models = client.search_logged_models(
            experiment_ids=[exp], filter_string=f"source_run_id = '{run.info.run_id}'")
        if not models:
            continue
        scores = [m.value for key in ("backtest_mase_by_window", "holdout_mase_by_origin")
                  for m in sorted(client.get_metric_history(run.info.run_id, key),
                                  key=lambda m: m.step)]
        out.append({"name": run.info.run_name, "run_id": run.info.run_id,
                    "uri": models[0].model_uri, "selection": scores,
                    "holdout_mase": run.data.metrics.get("holdout_mase")})
    return out


def study(pipeline: Path, validation: bool) -> Path:
    """Train once, forecast the span with every candidate; the JSON's path."""
    set_cfg = load_config(pipeline)
    test_size = set_cfg.evaluation.test_size
    clean = load_frame(set_cfg, validation, min_length=test_size + 1)
    work = Path(tempfile.mkdtemp(prefix="deepcast-select-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.chdir(work)
    import deepcast
    from deepcast.pipelines.tracking import Tracker

    cfg = auto_config(pipeline, "fast", None)
    trained = deepcast.train(cfg, split_holdout(clean, test_size)[0])
    registry = Tracker(cfg["name"]).registry
    rows, yhat = [], clean.loc[clean.groupby(ID).cumcount(ascending=False) < test_size,
                               [ID, DS]].reset_index(drop=True)
    for cand in candidate_runs(trained.parent_run_id):
        version = registry.register(cand["uri"], cand["run_id"], {}).version
        fc = forecast_span(cfg, clean, test_size, set_cfg.features.horizon, version)
        yhat[cand["name"]] = yhat[[ID, DS]].merge(fc, on=[ID, DS], how="left")["yhat"].to_numpy()
        rows.append(cand | {"span_mase": score_forecast(fc[[ID, DS, "yhat"]],
                                                        clean[[ID, DS, Y]], set_cfg)["mase"]})
        print(f"{cand['name']:>16}: select {np.mean(cand['selection']):.4f} "
              f"span {rows[-1]['span_mase']:.4f}", flush=True)
    out = RESULTS / f"selection_{set_cfg.name}{'_validation' if validation else ''}.json"
    yhat.to_parquet(out.with_suffix(".parquet"), index=False)  # every candidate's forecast
    out.write_text(json.dumps({"set": set_cfg.name, "validation": validation,
                               "best": trained.best, "candidates": rows}, indent=2))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline", nargs="?")
    ap.add_argument("--validation", action="store_true")
    ap.add_argument("--rules", action="store_true")
    args = ap.parse_args()
    if args.rules:
        from selection_rules import main as rules_main
        sys.exit(rules_main(False))
    print("->", study(Path(args.pipeline).resolve(), args.validation))
