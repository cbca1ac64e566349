"""Accuracy side by side: deepcast's families and ensembles vs the peers, one test span.

    python benchmarks/accuracy.py PIPELINE.yaml [--validation] [--models a,b] [--peers-only]
    python benchmarks/accuracy.py --table          # markdown of every results file

Fits every ``models:`` entry of the pipeline with the pure core (no MLflow, no Prefect) on
the training span, forecasts the test span (the last ``evaluation.test_size`` points of every
series, from consecutive origins when it is longer than the horizon) and scores MASE and
sMAPE. Then it builds the ``ensemble:`` entries, and scores the peers' forecasts written by
``benchmarks/peers_accuracy.py`` (run in the peers' virtualenvs) with the same metric code,
so every number in the table comes from one formula on the same points.

``--validation`` drops the official test span first and scores the span before it: a
backtest on the training part only, used to choose the recommended configurations without
looking at the test span. Results: ``benchmarks/results/accuracy_<name>[_validation].csv``
(one row per library and model; a rerun replaces the rows of the models it scored).
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from deepcast.flows.cli import configure_environment  # noqa: E402

configure_environment()

from deepcast.features.schema import DS, ID  # noqa: E402
from deepcast.forecasting.evaluate import holdout_forecast, score_holdout, split_holdout  # noqa: E402
from deepcast.pipelines.config import load_config  # noqa: E402
from deepcast.pipelines.ensembles import fit_ensemble  # noqa: E402
from deepcast.pipelines.ingest import ingest  # noqa: E402
from deepcast.pipelines.modelling import (  # noqa: E402
    ModelResult,
    checkpoint_dir,
    fit_model,
    prepare,
    training_settings,
    user_frame,
)
from deepcast.pipelines.validate import validate_long_frame  # noqa: E402


def results_path(name: str, validation: bool) -> Path:
    return RESULTS / f"accuracy_{name}{'_validation' if validation else ''}.csv"


def load_frame(cfg, validation: bool, min_length: int | None = None) -> pd.DataFrame:
    """The validated frame; with ``validation``, without the official test span.
    ``min_length``: the shortest series kept (default: what training ``cfg`` needs)."""
    raw = ingest(cfg.data)
    n_raw = raw[ID].nunique()
    if validation:
        raw = split_holdout(raw.sort_values([ID, DS]), cfg.evaluation.test_size)[0]
    with tempfile.TemporaryDirectory() as tmp:
        clean, report = validate_long_frame(raw, cfg, tmp, min_length=min_length)
    if not report.success:
        sys.exit(report.summary())
    n = clean[ID].nunique()
    if n != n_raw:
        print(f"note: {n_raw - n} of {n_raw} series too short for this config "
              f"({'validation' if validation else 'test'} span); scored on {n}")
        if not validation:
            sys.exit("every series must be scored on the official test span")
    return clean


def score_forecast(fc: pd.DataFrame, clean: pd.DataFrame, cfg) -> dict[str, float]:
    """MASE / sMAPE of a forecast frame (``unique_id, ds, yhat``) on the test span."""
    fc = fc.astype({DS: clean[DS].dtype})
    scores, _ = score_holdout(fc, clean, cfg.evaluation.test_size, cfg.data.season_length)
    return scores


def run_deepcast(cfg, clean: pd.DataFrame, only: set[str] | None, tag: str = "",
                 path: Path | None = None) -> list[dict]:
    """Fit, forecast and score every model and ensemble of ``cfg``; each row is saved to
    ``path`` as soon as it is scored (a long run that is stopped keeps what it did)."""
    prep = prepare(clean, cfg)
    print(f"{cfg.name}: {prep.panel.n_series} series, {len(clean)} rows, "
          f"{len(prep.train_starts)} training windows", flush=True)
    rows, results = [], []
    frame = user_frame(clean, cfg)
    d = cfg.data

    def record(label: str, family: str, predictor, seconds: float, epochs: int) -> None:
        t0 = time.perf_counter()  # local (statistical) models fit here, at forecast time
        fc = holdout_forecast(predictor.predict, frame, cfg.evaluation.test_size,
                              d.id_col, d.time_col, d.target_col)
        forecast_s = time.perf_counter() - t0
        scores = score_forecast(fc, clean, cfg)
        rows.append({"library": "deepcast", "model": f"{tag}{label}", "family": family,
                     "mase": scores["mase"], "smape": scores["smape"],
                     "fit_s": round(seconds, 1), "epochs": epochs,
                     "forecast_s": round(forecast_s, 1)})
        print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1),
              flush=True)
        if path is not None:
            save(rows[-1:], path)

    for entry in cfg.models:
        if only and entry.label not in only:
            continue
        predictor, history, seconds = fit_model(entry, prep, training_settings(cfg),
                                                checkpoint=checkpoint_dir(cfg, entry.label))
        results.append(ModelResult(entry.label, entry.type, {}, predictor=predictor))
        record(entry.label, entry.type, predictor, seconds, len(history.get("loss", [])))
    have = {r.name for r in results}
    for spec in cfg.ensemble:
        if spec.method != "bagging" and not set(spec.members) <= have:
            continue
        if only and spec.name not in only and spec.method == "bagging":
            continue
        predictor, _, seconds = fit_ensemble(spec, results, prep, cfg)
        record(spec.name, f"ensemble-{spec.method}", predictor, seconds, 0)
    return rows


def score_peers(cfg, clean: pd.DataFrame, validation: bool) -> list[dict]:
    """Score every peer forecast file of this set (``peers_accuracy.py`` output)."""
    rows = []
    suffix = "_validation" if validation else ""
    for path in sorted(glob.glob(str(RESULTS / f"forecasts_{cfg.name}_*{suffix}.parquet"))):
        if not validation and path.endswith("_validation.parquet"):
            continue
        fc = pd.read_parquet(path)
        lib = Path(path).stem.split("_")[2]
        for model, part in fc.groupby("model", sort=False):
            scores = score_forecast(part[[ID, DS, "yhat"]], clean, cfg)
            rows.append({"library": lib, "model": model, "family": "peer",
                         "mase": scores["mase"], "smape": scores["smape"],
                         "fit_s": float(part["fit_s"].iloc[0]), "epochs": 0})
    return rows


def save(rows: list[dict], path: Path) -> pd.DataFrame:
    """Merge ``rows`` into the results file (replacing rows of the same library and model)."""
    new = pd.DataFrame(rows)
    if path.is_file() and len(new):
        old = pd.read_csv(path)
        keep = ~old.set_index(["library", "model"]).index.isin(
            new.set_index(["library", "model"]).index)
        new = pd.concat([old[keep], new], ignore_index=True)
    elif path.is_file():
        new = pd.read_csv(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(path, index=False, float_format="%.4f")
    return new


def table() -> None:
    """Markdown: one table per results file, sorted by MASE, with the ratio to AutoETS."""
    for path in sorted(RESULTS.glob("accuracy_*.csv")):
        df = pd.read_csv(path).sort_values("mase")
        ets = df.loc[df.model == "AutoETS", "mase"]
        if len(ets):
            df["mase_vs_AutoETS"] = df["mase"] / float(ets.iloc[0])
        print(f"\n### {path.stem.removeprefix('accuracy_')}\n")
        print(markdown(df))


def markdown(df: pd.DataFrame) -> str:
    """A GitHub table (floats to 3 decimals) without the optional tabulate package."""
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline", nargs="?")
    ap.add_argument("--validation", action="store_true",
                    help="score the span before the official test span (model selection)")
    ap.add_argument("--models", default="", help="comma-separated subset of models to fit")
    ap.add_argument("--peers-only", action="store_true", help="only score peer forecasts")
    ap.add_argument("--tag", default="", help="prefix of the model names (candidate configs)")
    ap.add_argument("--table", action="store_true", help="print every results file")
    args = ap.parse_args()
    if args.table or not args.pipeline:
        return table()
    cfg = load_config(args.pipeline)
    t0 = time.perf_counter()
    # peers only: every series with a point before the span (as auto_accuracy.py scores)
    clean = load_frame(cfg, args.validation,
                       cfg.evaluation.test_size + 1 if args.peers_only else None)
    path = results_path(cfg.name, args.validation)
    if not args.peers_only:
        run_deepcast(cfg, clean, set(filter(None, args.models.split(","))) or None, args.tag,
                     path)
    out = save(score_peers(cfg, clean, args.validation), path)
    print(f"\n{out.sort_values('mase').to_string(index=False, float_format='{:.4f}'.format)}"
          f"\n({time.perf_counter() - t0:.0f} s) -> {results_path(cfg.name, args.validation)}")


if __name__ == "__main__":
    main()
