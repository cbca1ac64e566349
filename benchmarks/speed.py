"""Speed and memory side by side: deepcast vs Keras' own window pipeline and neuralforecast.

    python benchmarks/speed.py [windows] [train] [predict] [cli] [--runs 3] [--quick]

Each measurement runs in a fresh process (this script with ``--worker``, or
``benchmarks/peers_speed.py`` in the neuralforecast virtualenv ``$PEERS/nf``), runs are
interleaved (deepcast, peer, deepcast, peer, ...) and the medians of ``--runs`` runs are
compared as ratios. The machine's ``uptime`` load is printed before and after, since a
shared machine skews every figure. Results: ``benchmarks/results/speed.json``.

- windows: windows/s of a shuffled, batched epoch (the second pass, consumed in the graph as
  ``fit`` does) of ``deepcast.features.windows.make_dataset`` vs
  ``keras.utils.timeseries_dataset_from_array`` (one per series, concatenated), same series,
  lookback 36, horizon 18, batch 256; plus the RSS growth of building and iterating each,
  next to what materialised windows would take (windows x (lookback + horizon) x 4 bytes).
- train: steady-state windows/s (epochs after the first) of deepcast's training path
  (``KerasForecaster.fit``: its input pipeline, its models) for LSTM(64), MLP(512-512) and
  the transformer (PatchTST, d_model 64) vs neuralforecast's LSTM, MLP and PatchTST of the
  same size, input 36, h 18, 256 windows per step (neuralforecast: time of 2N minus N steps).
- predict: 10,000 series x 120 points, h 18, long DataFrame -> forecast frame, warm
  (second call timed): ``Predictor.predict`` vs ``NeuralForecast.predict``, both MLP(512-512).
- cli: cold ``deepcast forecast`` from the MLflow registry (process start, imports, Prefect,
  validation, registry load, forecast, file written) of one series (a small forecast, goal
  <= 8 s) and of the same 10,000 series (goal <= 15 s).

train, predict and cli run on the **default path** a user takes: monthly datetime ``ds``
(``freq: MS``) and ``calendar: auto`` (month features as future covariates).
``--ds int`` gives the integer-``ds``, no-covariate variant the first rounds measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PEERS = Path(os.environ.get("PEERS", "/work/peers"))
L, H, BATCH = 36, 18, 256
EPOCHS = 5  # passes of the input-pipeline benchmark


def save_result(file: str, key: str, result: dict) -> None:
    """Print ``result`` and keep it under ``key`` in ``benchmarks/results/FILE`` (other
    keys, e.g. other sizes, stay)."""
    print(json.dumps(result, indent=1))
    path = Path(__file__).resolve().parent / "results" / file
    out = json.loads(path.read_text()) if path.is_file() else {}
    out[key] = result
    path.write_text(json.dumps(out, indent=1))


def panel_parser(doc: str, generate, length: int) -> argparse.ArgumentParser | None:
    """A scale benchmark's command line: ``--generate SERIES LENGTH FOLDER`` writes the
    panel with ``generate`` (run as a process of its own, so that its temporaries are not
    the measured process's memory) and gives None; otherwise a parser with ``--series``,
    ``--length`` (default ``length``) and ``--family``."""
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generate(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        return None
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--length", type=int, default=length)
    ap.add_argument("--family", default="linear")
    return ap


def rss_mb() -> float:
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak measures what follows."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def synthetic_panel(n_series: int, length: int, seed: int = 0) -> np.ndarray:
    """(n_series, length) float32: seasonal (12) random walks with noise, positive."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    level = 100 + np.cumsum(rng.normal(0, 1, (n_series, length)), axis=1)
    season = 10 * np.sin(2 * np.pi * t / 12)[None, :] * rng.uniform(0.5, 1.5, (n_series, 1))
    return (level + season + rng.normal(0, 1, (n_series, length)) + 50).astype(np.float32)


DS_KINDS = {"datetime": "MS", "int": 1}  # --ds: the data.freq of each kind of ds


def long_frame(values: np.ndarray, ds: str = "datetime"):
    """Long ``unique_id, ds, y`` frame of a (n_series, length) panel: monthly timestamps
    from 2000-01 (``datetime``, the default path) or integer steps 1.. (``int``)."""
    import pandas as pd

    n, length = values.shape
    steps = (pd.date_range("2000-01-01", periods=length, freq="MS").to_numpy()
             if ds == "datetime" else np.arange(1, length + 1))
    return pd.DataFrame({"unique_id": np.repeat([f"s{i:05d}" for i in range(n)], length),
                         "ds": np.tile(steps, n),
                         "y": values.reshape(-1).astype(np.float64)})


# ---------------------------------------------------------------- workers (one process each)
def _setup_tf() -> None:
    sys.path.insert(0, str(ROOT))
    from deepcast.flows.cli import configure_environment

    configure_environment()


def worker_windows(tool: str, n_series: int, length: int, lookback: int,
                   epochs: int = EPOCHS) -> dict:
    """A shuffled, batched stream of ``epochs`` passes, as ``fit`` consumes it (a single
    pass of deepcast's stream lasts well under 0.1 s, too short to time); windows/s and RSS
    growth."""
    _setup_tf()
    import tensorflow as tf

    from deepcast.features.windows import Epochs, make_dataset, window_starts

    values = synthetic_panel(n_series, length)
    flat = values.reshape(-1)
    offsets = np.arange(n_series + 1, dtype=np.int64) * length
    reset_peak_rss()
    base = rss_mb()
    t0 = time.perf_counter()
    if tool == "deepcast":
        starts = window_starts(offsets, lookback, H)
        ds = make_dataset(flat, starts, (lookback, H, BATCH), epochs=Epochs(0, range(epochs)))
    else:
        parts = [tf.keras.utils.timeseries_dataset_from_array(
            values[i], None, sequence_length=lookback + H, batch_size=BATCH, shuffle=True,
            seed=i) for i in range(n_series)]
        ds = parts[0]
        for p in parts[1:]:
            ds = ds.concatenate(p)
        ds = ds.map(lambda w: (tf.expand_dims(w[:, :lookback], -1), w[:, lookback:]),
                    num_parallel_calls=tf.data.AUTOTUNE).repeat(epochs)  # reshuffled each
        ds = ds.prefetch(tf.data.AUTOTUNE)
    # consumed in the graph, as Model.fit does (a Python loop would time the loop); the
    # first pass includes building and tracing, the second is the steady state
    count = tf.function(lambda: ds.reduce(
        tf.constant(0, tf.int64), lambda n, batch: n + tf.shape(batch[1], out_type=tf.int64)[0]))
    n = int(count())
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = int(count())
    seconds = time.perf_counter() - t0
    expected = n_series * (length - lookback - H + 1) * epochs
    assert n == expected, (n, expected)
    return {"windows": n, "epochs": epochs, "first_pass_s": first, "seconds": seconds,
            "windows_per_s": n / seconds,
            "rss_growth_mb": peak_rss_mb() - base,
            "data_mb": flat.nbytes / 2**20,
            "materialised_mb": n // epochs * (lookback + H) * 4 / 2**20}


FAMILIES = {"lstm": ("lstm", {"units": 64}),
            "mlp": ("mlp", {"hidden_size": 512, "layers": 2}),
            # the zoo families at their defaults (neuralforecast's, same sizes)
            "nhits": ("nhits", {}), "nbeats": ("nbeats", {}), "tide": ("tide", {}),
            "tft": ("tft", {}),
            "transformer": ("transformer", {"d_model": 64, "heads": 4, "layers": 2,
                                            "ff_dim": 128, "patch_len": 16, "stride": 8})}


def worker_train(model: str, n_series: int, length: int, epochs: int,
                 ds: str = "int") -> dict:
    """Steady-state windows/s of ``KerasForecaster.fit`` (epochs after the first).
    ``ds="datetime"``: the default path, through ``prepare`` and ``fit_model`` as ``train``
    runs it (monthly datetime ``ds``, ``calendar: auto``: month sin/cos as future
    covariates, per-series scaling); ``"int"``: the bare fit of an integer-indexed panel
    without covariates (the earlier rounds)."""
    _setup_tf()
    from deepcast.forecasting.base import TrainSettings

    family, options = FAMILIES[model]
    values = synthetic_panel(n_series, length)
    # XLA on as in a default-length fit of this panel (30 epochs x 175 steps is past
    # jit_compile: auto's 2,000 planned steps); these 3 epochs alone are not
    settings = TrainSettings(max_epochs=epochs, patience=epochs, batch_size=BATCH, seed=0,
                             jit_compile=True)
    stamps: list[float] = []
    t0 = time.perf_counter()
    if ds == "datetime":
        windows, params = _fit_default_path(family, options, values, settings, stamps)
    else:
        windows, params = _fit_bare(family, options, values, settings, stamps)
    steady = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return {"windows_per_epoch": windows, "first_epoch_s": stamps[0] - t0, "epoch_s": steady,
            "windows_per_s": windows / steady, "params": params, "ds": ds}


def _fit_bare(family: str, options: dict, values: np.ndarray, settings, stamps: list
              ) -> tuple[int, int]:
    from deepcast.features.windows import window_starts
    from deepcast.forecasting.base import TrainingData, WindowSpec
    from deepcast.forecasting.models import build_forecaster

    n_series, length = values.shape
    offsets = np.arange(n_series + 1, dtype=np.int64) * length
    # the same per-series standardisation deepcast's prepare() applies
    flat = ((values - values.mean(1, keepdims=True)) / values.std(1, keepdims=True)
            ).reshape(-1).astype(np.float32)
    starts = window_starts(offsets, L, H)
    f = build_forecaster(family, family, WindowSpec(L, H, 12), options)
    f.fit(TrainingData(flat, starts, np.zeros(0, np.int64)), settings,
          on_epoch=lambda e, logs: stamps.append(time.perf_counter()))
    return len(starts), int(f.model.count_params())


def _fit_default_path(family: str, options: dict, values: np.ndarray, settings,
                      stamps: list) -> tuple[int, int]:
    from deepcast.pipelines.config import parse_config
    from deepcast.pipelines.modelling import fit_model, prepare

    cfg = parse_config({"name": "speed", "data": {"path": "unused.csv", "freq": "MS",
                                                  "season_length": 12},
                        "features": {"lookback": L, "horizon": H},  # calendar: auto
                        "models": [{"type": family, **options}],
                        "evaluation": {"test_size": H}})
    prep = prepare(long_frame(values, "datetime"), cfg)
    predictor, _, _ = fit_model(cfg.models[0], prep, settings,
                                on_epoch=lambda e, logs: stamps.append(time.perf_counter()))
    return (len(prep.train_starts),
            int(predictor.forecaster.model.count_params()))


def worker_predict(n_series: int, length: int, ds: str = "datetime") -> dict:
    """Warm ``Predictor.predict``: long frame -> forecast frame (MLP 512-512); on datetime
    ``ds`` with the calendar features ``calendar: auto`` gives monthly data (month)."""
    _setup_tf()
    from deepcast.features.covariates import CovariateEncoder, CovariateSpec, default_calendar
    from deepcast.features.scalers import SeriesScaler
    from deepcast.features.schema import ColumnSpec
    from deepcast.features.windows import panel_from_frame, window_starts
    from deepcast.forecasting.base import InputSpec, TrainingData, TrainSettings, WindowSpec
    from deepcast.forecasting.models import build_forecaster
    from deepcast.forecasting.predictor import Predictor

    freq = DS_KINDS[ds]
    df = long_frame(synthetic_panel(n_series, length), ds)
    df["unique_id"] = df["unique_id"].astype("string")  # as deepcast's readers give it
    panel = panel_from_frame(df)
    scaler = SeriesScaler().fit(panel)
    scaled = scaler.transform(panel)
    spec = CovariateSpec(calendar=default_calendar(freq))
    enc = CovariateEncoder(spec, freq).fit(df) if not spec.empty else None
    f = build_forecaster("mlp", "mlp", WindowSpec(L, H, 12), {"hidden_size": 512, "layers": 2},
                         InputSpec(n_future=spec.n_future))
    starts = window_starts(panel.offsets, L, H)[::50]
    f.fit(TrainingData(scaled.values, starts, np.zeros(0, np.int64),
                       enc.transform(df) if enc else None, panel.offsets),
          TrainSettings(max_epochs=1, batch_size=BATCH))
    pred = Predictor(f, scaler, ColumnSpec("unique_id", "ds", "y", freq), enc)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fc = pred.predict(df)
        times.append(time.perf_counter() - t0)
    assert len(fc) == n_series * H and fc["yhat"].notna().all()
    return {"first_s": times[0], "warm_s": float(np.median(times[1:])), "rows": len(fc),
            "ds": ds, "calendar": list(spec.calendar)}


WORKERS = {"windows": worker_windows, "train": worker_train, "predict": worker_predict}


# ---------------------------------------------------------------- orchestration
def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def spawn(cmd: list[str], timeout: int = 1800) -> dict:
    """Run one measurement process; its last stdout line is its JSON result."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def me(kind: str, **kw) -> list[str]:
    return [sys.executable, __file__, "--worker", kind, json.dumps(kw)]


def peer(kind: str, **kw) -> list[str]:
    return [str(PEERS / "nf" / "bin" / "python"), str(ROOT / "benchmarks" / "peers_speed.py"),
            kind, json.dumps(kw)]


def median(runs: list[dict], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def interleaved(pairs: dict[str, list[str]], runs: int) -> dict[str, list[dict]]:
    """Run every command ``runs`` times, round robin; results per name."""
    out: dict[str, list[dict]] = {k: [] for k in pairs}
    for r in range(runs):
        for name, cmd in pairs.items():
            res = spawn(cmd)
            out[name].append(res)
            print(f"  run {r + 1} {name}: {json.dumps(res)}", flush=True)
    return out


def bench_windows(runs: int, quick: bool) -> dict:
    n_series, length = (5, 2000) if quick else (20, 4000)
    cmds = {"deepcast": me("windows", tool="deepcast", n_series=n_series, length=length,
                           lookback=L),
            "keras": me("windows", tool="keras", n_series=n_series, length=length, lookback=L),
            "deepcast_lookback360": me("windows", tool="deepcast", n_series=n_series,
                                       length=length, lookback=360)}
    res = interleaved(cmds, runs)
    summary = {k: {"windows_per_s": median(v, "windows_per_s"),
                   "rss_growth_mb": median(v, "rss_growth_mb"),
                   "materialised_mb": v[0]["materialised_mb"], "data_mb": v[0]["data_mb"]}
               for k, v in res.items()}
    summary["ratio_windows_per_s"] = (summary["deepcast"]["windows_per_s"]
                                      / summary["keras"]["windows_per_s"])
    return {"series": n_series, "length": length, "runs": res, "summary": summary}


def bench_train(runs: int, quick: bool, models: list[str], ds: str) -> dict:
    n_series, length = (50, 300) if quick else (100, 500)
    cmds = {}
    for m in models:
        cmds[f"deepcast_{m}"] = me("train", model=m, n_series=n_series, length=length,
                                   epochs=3, ds=ds)
        cmds[f"neuralforecast_{m}"] = peer("train", model=m, n_series=n_series,
                                           length=length, steps=20 if quick else 200, ds=ds)
    res = interleaved(cmds, runs)
    summary = {}
    for m in models:
        d, n = median(res[f"deepcast_{m}"], "windows_per_s"), median(
            res[f"neuralforecast_{m}"], "windows_per_s")
        summary[m] = {"deepcast_windows_per_s": d, "neuralforecast_windows_per_s": n,
                      "ratio": d / n}
    return {"series": n_series, "length": length, "ds": ds, "runs": res, "summary": summary}


def bench_predict(runs: int, quick: bool, ds: str) -> dict:
    n_series = 1000 if quick else 10000
    cmds = {"deepcast": me("predict", n_series=n_series, length=120, ds=ds),
            "neuralforecast": peer("predict", n_series=n_series, length=120, ds=ds)}
    res = interleaved(cmds, runs)
    d, n = median(res["deepcast"], "warm_s"), median(res["neuralforecast"], "warm_s")
    return {"series": n_series, "ds": ds, "runs": res,
            "summary": {"deepcast_warm_s": d, "neuralforecast_warm_s": n, "ratio": n / d}}


def _cli_pipeline(folder: Path, n_series: int, ds: str) -> Path:
    """A trained pipeline (MLP 512-512, registered as version 1) on ``n_series`` series of
    120 points, in ``folder``; its YAML path."""
    long_frame(synthetic_panel(n_series, 120), ds).to_parquet(folder / "data.parquet")
    (folder / "p.yaml").write_text(
        f"name: speed-cli-{n_series}\n"
        f"data: {{path: data.parquet, freq: {DS_KINDS[ds]}, season_length: 12}}\n"
        f"features: {{lookback: {L}, horizon: {H}}}\n"  # calendar: auto (the default)
        "models: [{type: mlp, hidden_size: 512, layers: 2}]\n"
        "training: {max_epochs: 1, checkpoint: false}\n"
        f"evaluation: {{test_size: {H}, backtest: {{n_windows: 1}}}}\n")
    subprocess.run([str(Path(sys.executable).with_name("deepcast")), "train",
                    str(folder / "p.yaml")], cwd=folder, env=_cli_env(folder), check=True,
                   capture_output=True)
    return folder / "p.yaml"


def _cli_env(folder: Path) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
            "TF_CPP_MIN_LOG_LEVEL": "3"}


def bench_cli(runs: int, quick: bool, ds: str) -> dict:
    """Cold ``deepcast forecast`` from a registered MLP: one series and 10,000 series,
    interleaved, each in a fresh process."""
    sizes = {"small": 1, "large": 1000 if quick else 10000}
    deepcast = str(Path(sys.executable).with_name("deepcast"))
    times: dict[str, list[float]] = {k: [] for k in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {k: Path(tmp) / k for k in sizes}
        configs = {}
        for k, n in sizes.items():
            folders[k].mkdir()
            configs[k] = _cli_pipeline(folders[k], n, ds)
        for _ in range(runs):
            for k in sizes:
                t0 = time.perf_counter()
                r = subprocess.run([deepcast, "forecast", str(configs[k]), "--output",
                                    str(folders[k] / "fc.parquet"), "--model", "1"],
                                   cwd=folders[k], env=_cli_env(folders[k]),
                                   capture_output=True, text=True)
                times[k].append(time.perf_counter() - t0)
                if r.returncode != 0:
                    raise RuntimeError(r.stderr[-3000:])
                print(f"  cold deepcast forecast, {sizes[k]} series: {times[k][-1]:.2f} s",
                      flush=True)
    return {"series": sizes, "ds": ds, "runs_s": times,
            "summary": {f"cold_forecast_{k}_s": float(np.median(v)) for k, v in times.items()}}


def yardstick(runs: int = 3) -> float:
    """Median wall seconds of ``python -c "import keras"`` in a fresh process: this machine's
    speed today, recorded beside every benchmark (the same kind of VM has measured 4.6 s
    and 7.0 s on different days), so absolute times from different days can be compared."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import keras"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(WORKERS[sys.argv[2]](**json.loads(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("benches", nargs="*", default=["windows", "train", "predict", "cli"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--models", default="lstm,mlp,transformer")
    ap.add_argument("--ds", choices=sorted(DS_KINDS), default="datetime",
                    help="train/predict/cli: datetime ds with calendar: auto (the default "
                    "path) or integer ds (no covariates)")
    ap.add_argument("--results", help="file name under benchmarks/results (default "
                    "speed.json, speed_quick.json with --quick)")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (args.results or ("speed_quick.json" if args.quick else "speed.json"))
    out = json.loads(path.read_text()) if path.is_file() else {}
    for b in args.benches:
        before = uptime()
        print(f"== {b}  ({before})", flush=True)
        t0 = time.perf_counter()
        if b == "windows":
            res = bench_windows(args.runs, args.quick)
        elif b == "train":
            res = bench_train(args.runs, args.quick, args.models.split(","), args.ds)
        elif b == "predict":
            res = bench_predict(args.runs, args.quick, args.ds)
        elif b == "cli":
            res = bench_cli(args.runs, args.quick, args.ds)
        else:
            sys.exit(f"unknown benchmark {b!r}")
        res.update(load_before=before, load_after=uptime(), seconds=time.perf_counter() - t0,
                   import_keras_s=yardstick())
        out[b] = res
        print(json.dumps(res["summary"], indent=1), flush=True)
        path.write_text(json.dumps(out, indent=1))
    print("->", path)


if __name__ == "__main__":
    main()
