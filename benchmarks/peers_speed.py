"""neuralforecast side of ``benchmarks/speed.py`` (run in the ``$PEERS/nf`` virtualenv).

    $PEERS/nf/bin/python benchmarks/peers_speed.py train '{"model": "lstm", ...}'
    $PEERS/nf/bin/python benchmarks/peers_speed.py predict '{"n_series": 10000, ...}'

Prints one JSON line. The data is the same synthetic panel as deepcast's side (the generator
is imported from ``speed.py``, which needs only numpy and pandas).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import BATCH, DS_KINDS, H, L, long_frame, synthetic_panel  # noqa: E402

warnings.filterwarnings("ignore")
for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(name).setLevel(logging.ERROR)
os.environ.setdefault("PL_DISABLE_FORK", "1")
QUIET = dict(enable_progress_bar=False, enable_model_summary=False, logger=False,
             enable_checkpointing=False, random_seed=0)


def build(model: str, steps: int, **extra):
    """neuralforecast's equivalent of deepcast's benchmark model, ``steps`` training steps
    of 256 windows each."""
    from neuralforecast.models import LSTM, MLP, NBEATS, NHITS, TFT, PatchTST, TiDE

    common = dict(h=H, input_size=L, max_steps=steps, windows_batch_size=BATCH,
                  scaler_type="standard", val_check_steps=10**6, **QUIET, **extra)
    if model == "lstm":
        return LSTM(encoder_hidden_size=64, encoder_n_layers=1, decoder_hidden_size=64,
                    decoder_layers=1, **common)
    if model == "mlp":
        return MLP(num_layers=2, hidden_size=512, **common)
    if model in ("nhits", "nbeats", "tide", "tft"):  # both libraries' defaults, which match
        return {"nhits": NHITS, "nbeats": NBEATS, "tide": TiDE, "tft": TFT}[model](**common)
    return PatchTST(patch_len=16, stride=8, hidden_size=64, n_heads=4, encoder_layers=2,
                    linear_hidden_size=128, **common)


#: the families that take future covariates in neuralforecast (N-BEATS does not)
FUTURE_EXOG = ("nhits", "tide", "tft", "lstm", "mlp")


def month_features(df):
    """deepcast's ``calendar: auto`` for monthly data: the month's sine and cosine."""
    angle = 2 * np.pi * (df["ds"].dt.month - 1) / 12
    return df.assign(month_sin=np.sin(angle), month_cos=np.cos(angle))


def train(model: str, n_series: int, length: int, steps: int, ds: str = "int") -> dict:
    """Windows/s from the time of 2N minus N steps (start-up cancels out). ``ds="datetime"``:
    the frame deepcast's default path sees, with its two calendar columns as future
    covariates for the families that take them."""
    import torch
    from neuralforecast import NeuralForecast

    df = long_frame(synthetic_panel(n_series, length))
    exog = {}
    if ds == "datetime" and model in FUTURE_EXOG:
        df, exog = month_features(df), {"futr_exog_list": ["month_sin", "month_cos"]}
    seconds = {}
    for s in (steps, 2 * steps):
        nf = NeuralForecast(models=[build(model, s, **exog)], freq=DS_KINDS["datetime"])
        t0 = time.perf_counter()
        nf.fit(df)
        seconds[s] = time.perf_counter() - t0
    dt = seconds[2 * steps] - seconds[steps]
    params = sum(p.numel() for p in nf.models[0].parameters())
    return {"steps": steps, "seconds": seconds, "windows_per_s": steps * BATCH / dt,
            "params": int(params), "threads": torch.get_num_threads(), "exog": bool(exog)}


def predict(n_series: int, length: int, ds: str = "datetime") -> dict:
    """Warm ``NeuralForecast.predict`` of every series (MLP 512-512), on the same frame as
    deepcast's (monthly timestamps by default)."""
    from neuralforecast import NeuralForecast

    df = long_frame(synthetic_panel(n_series, length), ds)
    # 1024 series per inference batch (the default is batch_size, 32)
    nf = NeuralForecast(models=[build("mlp", 5, valid_batch_size=1024)], freq=DS_KINDS[ds])
    nf.fit(df)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fc = nf.predict(df)
        times.append(time.perf_counter() - t0)
    assert len(fc) == n_series * H
    return {"first_s": times[0], "warm_s": float(np.median(times[1:])), "rows": len(fc)}


if __name__ == "__main__":
    fn = {"train": train, "predict": predict}[sys.argv[1]]
    print(json.dumps(fn(**json.loads(sys.argv[2]))))
