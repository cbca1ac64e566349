"""deepcast's networks on an accelerator: training windows/s of the model-zoo families and
LSTM in float32 with XLA, mixed precision with XLA, and float32 without XLA; then one
GPU-trained model saved as deepcast saves it, for ``--check`` to load on a CPU.

Runs under any Keras 3 backend. The lent GPU machine has JAX with CUDA and no TensorFlow
(and TensorFlow's CUDA wheel is far over what can be carried there), so there it runs with
``KERAS_BACKEND=jax``: the networks are deepcast's own (``build_forecaster(...).build()``,
deepcast's losses), fed numpy windows of real M3 monthly series; deepcast's tf.data input
pipeline and TF distribution strategies are not part of it. ``.keras`` files do not depend
on the backend, which is what ``--check`` shows: the model trained there loads here under
TensorFlow with ``safe_mode=True`` and forecasts the same windows.

    KERAS_BACKEND=jax python benchmarks/gpu_families.py --out OUT     # on the GPU machine
    .venv/bin/python benchmarks/gpu_families.py --check OUT           # here, on the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("nhits", "nbeats", "tide", "tsmixer", "tft", "deepar", "lstm")
LOOKBACK, HORIZON, BATCH = 36, 18, 256
CONFIGS = {"float32+xla": ("float32", True), "mixed_float16+xla": ("mixed_float16", True),
           "mixed_bfloat16+xla": ("mixed_bfloat16", True), "float32": ("float32", False)}


def _importable() -> None:
    """``deepcast.forecasting`` from this checkout even where deepcast is not installed
    (the GPU machine): a ``deepcast`` package of links to the checkout's folders."""
    try:
        import deepcast.forecasting  # noqa: F401
    except ImportError:
        shim = Path(tempfile.mkdtemp()) / "deepcast"
        shim.mkdir()
        (shim / "__init__.py").write_text("")
        for sub in ("features", "forecasting"):
            (shim / sub).symlink_to(ROOT / sub)
        sys.path.insert(0, str(shim.parent))


def windows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training windows of the M3 monthly series (each scaled by its lookback's mean
    absolute value, as deepcast's scaler would roughly): inputs (n, L), targets (n, H)."""
    df = pd.read_parquet(ROOT / "benchmarks/data/m3_monthly.parquet")
    xs, ys = [], []
    for _, g in df.groupby("unique_id", sort=False):
        y = g["y"].to_numpy(np.float32)
        for s in range(0, len(y) - LOOKBACK - HORIZON + 1):
            xs.append(y[s:s + LOOKBACK])
            ys.append(y[s + LOOKBACK:s + LOOKBACK + HORIZON])
    x, y = np.stack(xs), np.stack(ys)
    scale = np.abs(x).mean(axis=1, keepdims=True) + 1e-6
    pick = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    return (x / scale)[pick], (y / scale)[pick]


def _forecaster(family: str):
    from deepcast.forecasting.base import WindowSpec
    from deepcast.forecasting.models import build_forecaster

    return build_forecaster(family, family, WindowSpec(LOOKBACK, HORIZON, 12), {})


def _feeds(net, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    feeds = {"y": x[..., None]}
    if "target" in net.input_names:  # DeepAR's teacher forcing
        feeds["target"] = y
    return feeds


def train_speed(family: str, policy: str, xla: bool, x, y, steps: int) -> dict:
    """Windows/s of ``steps`` training steps (after one compiling call), and the loss."""
    import keras

    from deepcast.forecasting.training import training_loss

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    net = _forecaster(family)
    model = net.build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=training_loss(net.quantiles, "mse", getattr(net, "distribution", None)),
                  jit_compile=xla)
    n = steps * BATCH
    t0 = time.perf_counter()
    model.fit(_feeds(net, x[:BATCH * 2], y[:BATCH * 2]), y[:BATCH * 2], batch_size=BATCH,
              epochs=1, verbose=0, shuffle=False)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hist = model.fit(_feeds(net, x[:n], y[:n]), y[:n], batch_size=BATCH, epochs=1, verbose=0,
                     shuffle=False)
    seconds = time.perf_counter() - t0
    keras.mixed_precision.set_global_policy("float32")
    return {"family": family, "config": f"{policy}{'+xla' if xla else ''}",
            "windows_per_s": round(n / seconds), "seconds": round(seconds, 3),
            "first_call_s": round(compile_s, 2), "loss": float(hist.history["loss"][-1])}


def run(out: Path, steps: int, families: tuple[str, ...]) -> None:
    import keras

    out.mkdir(parents=True, exist_ok=True)
    x, y = windows(max(steps, 8) * BATCH)
    meta = {"backend": keras.backend.backend(), "keras": keras.__version__,
            "devices": _devices(), "batch": BATCH, "steps": steps, "rows": []}
    # first, one model trained here in float32 with XLA, saved as deepcast saves it
    net = _forecaster("nhits")
    keras.utils.set_random_seed(0)
    net.model = net.build()
    net.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", jit_compile=True)
    net.model.fit({"y": x[..., None]}, y, batch_size=BATCH, epochs=2, verbose=0)
    fresh = net.build()  # the weights without the optimizer's state, as deepcast saves
    fresh.set_weights(net.model.get_weights())
    net.model = fresh
    net.save(out / "nhits_gpu")
    np.save(out / "probe_x.npy", x[:64])
    np.save(out / "probe_yhat.npy", net.predict(x[:64]))
    for family in families:
        for name, (policy, xla) in CONFIGS.items():
            try:  # without XLA a step is op by op: fewer steps
                row = train_speed(family, policy, xla, x, y,
                                  steps if xla else max(steps // 10, 8))
            except Exception as exc:  # one failing configuration must not hide the others
                row = {"family": family, "config": name, "error": repr(exc)[:300]}
            meta["rows"].append(row)
            print(json.dumps(row), flush=True)
            (out / "gpu_families.json").write_text(json.dumps(meta, indent=1))


def _devices() -> list[str]:
    try:
        import jax

        return [str(d) for d in jax.devices()]
    except ImportError:
        return ["cpu (TensorFlow)"]


def check(folder: Path) -> None:
    """Load the GPU-trained model here (TensorFlow, CPU, safe_mode) and forecast the same
    windows: the largest difference from the GPU's forecasts."""
    import deepcast.forecasting.models  # noqa: F401  (registers the families)
    from deepcast.forecasting.registry import load_forecaster

    net = load_forecaster(folder / "nhits_gpu")
    mine = net.predict(np.load(folder / "probe_x.npy"))
    theirs = np.load(folder / "probe_yhat.npy")
    meta = json.loads((folder / "gpu_families.json").read_text())
    print(f"trained on {meta['devices']} ({meta['backend']}, Keras {meta['keras']}); "
          f"loaded here with safe_mode=True: max |yhat_cpu - yhat_gpu| = "
          f"{float(np.max(np.abs(mine - theirs))):.2e} over {mine.size} values "
          f"(forecast scale ~{float(np.abs(theirs).mean()):.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="train and time here; write the results here")
    p.add_argument("--check", type=Path, help="load a GPU-trained model from this folder")
    p.add_argument("--steps", type=int, default=200, help="timed steps per configuration")
    p.add_argument("--families", nargs="*", default=list(FAMILIES),
                   help="families to time (none: only train and save the model to check)")
    args = p.parse_args()
    _importable()
    if args.check:
        check(args.check)
    else:
        run(args.out or Path(os.environ.get("OUT", "gpu_out")), args.steps,
            tuple(args.families))


if __name__ == "__main__":
    main()
