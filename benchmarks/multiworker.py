"""Can two trainer processes (MultiWorkerMirroredStrategy) beat one trainer on 2 cores?

    .venv/bin/python benchmarks/multiworker.py            # both, one after the other

Issue 18 leaves multi-worker data-parallel training optional: measure it, then choose. The
same MLP (2 x 512, 36 -> 12, Adam, MAE) fits 200,000 random windows for 2 epochs at a
global batch of 512, after one short warm-up fit:

- ``single``: one process, 2 TensorFlow threads (deepcast's trainer: Keras ``fit`` with
  ``steps_per_execution`` 16);
- ``multi``: two processes on 127.0.0.1 (``TF_CONFIG``), one thread each, under
  ``tf.distribute.MultiWorkerMirroredStrategy``, each fed its half of every batch.

Prints one JSON line per mode: windows/s, or the error that stopped it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

N, L, H, BATCH = 200_000, 36, 12, 512


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(mode: str) -> dict:
    """Fit in this process (a worker of ``multi`` when TF_CONFIG is set)."""
    import keras
    import numpy as np
    import tensorflow as tf

    strategy = (tf.distribute.MultiWorkerMirroredStrategy() if mode == "multi"
                else tf.distribute.get_strategy())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, L)).astype("float32")
    y = rng.normal(size=(N, H)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat()
    with strategy.scope():
        model = keras.Sequential([keras.Input((L,)), keras.layers.Dense(512, activation="relu"),
                                  keras.layers.Dense(512, activation="relu"),
                                  keras.layers.Dense(H)])
        model.compile("adam", "mae", steps_per_execution=1 if mode == "multi" else 16)
    steps = N // BATCH
    try:
        model.fit(data, epochs=1, steps_per_epoch=32, verbose=0)  # trace, warm up
        t0 = time.perf_counter()
        model.fit(data, epochs=2, steps_per_epoch=steps, verbose=0)
    except Exception as exc:  # noqa: BLE001 (reported: what stopped this mode)
        return {"mode": mode, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    seconds = time.perf_counter() - t0
    return {"mode": mode, "seconds": round(seconds, 2),
            "windows_per_s": round(2 * steps * BATCH / seconds)}


def run(mode: str) -> dict:
    """Start the mode's process(es) and return worker 0's result."""
    me = [sys.executable, __file__, "--worker", mode]
    if mode == "single":
        env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "2"}
        out = subprocess.run(me, env=env, capture_output=True, text=True, check=False)
        return json.loads(out.stdout.strip().splitlines()[-1])
    ports = [_port(), _port()]
    procs = []
    for index in (0, 1):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_NUM_INTRAOP_THREADS": "1",
               "TF_NUM_INTEROP_THREADS": "1"}
        procs.append(subprocess.Popen(me, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True))
    outs = [p.communicate(timeout=900)[0] for p in procs]
    return json.loads(outs[0].strip().splitlines()[-1])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        print(json.dumps(train(sys.argv[2])))
    else:
        for m in ("single", "multi"):
            print(json.dumps(run(m)))
