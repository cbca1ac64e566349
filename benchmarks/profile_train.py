"""Where a family's training step spends its time, per layer, forward and backward.

    python benchmarks/profile_train.py tft [--series 4] [--depth 2] [--top 30]   # 1-2 min

One epoch of ``speed.py``'s default-path fit (monthly datetime ``ds``, ``calendar: auto``,
lookback 36, horizon 18, batch 256, XLA on) is traced with TensorFlow's profiler while XLA
marks each of its compiled ops (``--xla_cpu_enable_xprof_traceme``) and dumps the optimised
modules; each op's time is then given to the Keras layer its HLO metadata names
(``fwd``/``bwd``: the forward pass or its gradient). Times are summed over the CPU threads
that ran the ops (two on this machine), so they add up to more than the epoch's wall time.
Ops XLA fused across layers (``?name``) are listed under their fusion's kind. This is how
the TFT's selection networks and TiDE's future projection were found to dominate their
steps (``README.md``, speed section).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def trace_epoch(family: str, series: int, folder: Path) -> float:
    """Fit 3 epochs, tracing the second; its wall time in seconds."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU's step (the trace reads its threads)
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                        "--xla_cpu_enable_xprof_traceme=true",
                                        f"--xla_dump_to={folder / 'hlo'}",
                                        "--xla_dump_hlo_as_text"]).strip()
    sys.path.insert(0, str(HERE))
    import speed

    speed._setup_tf()
    import tensorflow as tf

    from deepcast.forecasting.base import TrainSettings

    settings = TrainSettings(max_epochs=3, patience=3, batch_size=speed.BATCH, seed=0,
                             jit_compile=True)

    class Stamps(list):
        def append(self, t: float) -> None:
            super().append(t)
            if len(self) == 1:
                tf.profiler.experimental.start(str(folder / "trace"))
            elif len(self) == 2:
                tf.profiler.experimental.stop()

    stamps = Stamps()
    kind, options = speed.FAMILIES[family]
    speed._fit_default_path(kind, dict(options),
                            speed.synthetic_panel(series, 500), settings, stamps)
    return stamps[1] - stamps[0]


def op_times(folder: Path) -> collections.Counter:
    """Picoseconds per XLA op name over the profiler's compute threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(next((folder / "trace").rglob("*.xplane.pb")).read_bytes())
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    names = {k: v.name for k, v in plane.event_metadata.items()}
    total: collections.Counter = collections.Counter()
    for line in plane.lines:
        if "Eigen" in line.name:  # XLA's compute threads
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if not name.startswith("ThunkExecutor"):
                    total[name] += event.duration_ps
    return total


def op_layers(folder: Path) -> dict[str, str]:
    """XLA op name -> the TensorFlow op it came from (``op_name`` metadata), over the
    step modules, the largest (the full training batch) first. The last, smaller batch
    and the validation step compile modules of their own whose op names mostly repeat the
    training step's; the trace names ops only, so an op of theirs is counted under the
    training step's op of that name: approximate for them, exact for the full batches,
    which are nearly all of an epoch."""
    modules = sorted((folder / "hlo").glob("*one_step_on_data*after_optimizations.txt"),
                     key=lambda p: p.stat().st_size, reverse=True)
    out: dict[str, str] = {}
    reducers: dict[str, str] = {}
    for path in modules:
        text = path.read_text()
        bodies = {m.group(1): m.group(2)
                  for m in re.finditer(r"^%(\S+) \(.*?\n(.*?)^}", text, re.M | re.S)}
        for m in re.finditer(r"^\s*(?:ROOT )?%(\S+) = (.*)$", text, re.M):
            calls = re.search(r"calls=%([\w.\-]+)", m.group(2))
            body = bodies.get(calls.group(1), "") if calls else ""
            # its own op name, else that of the first op inside the computation it fuses
            found = re.search(r'op_name="([^"]+)"', m.group(2)) or re.search(
                r'op_name="([^"]+)"', body)
            if found:
                out.setdefault(m.group(1), found.group(1))
            elif reducer := re.search(r"to_apply=%([\w.\-]+)", m.group(2) + body):
                reducers.setdefault(m.group(1), reducer.group(1))
    # XLA's split reductions keep no metadata, only their reducer's name, which holds the
    # op's path with "_" for "/": give them to the longest layer name it contains
    layers = {op.split("/")[1 + op.startswith("gradient_tape/")] for op in out.values()
              if op.count("/") > 1 + op.startswith("gradient_tape/")}
    for name, reducer in reducers.items():
        hits = [layer for layer in layers if layer in reducer]
        if hits and name not in out:
            grad = "gradient_tape/" if reducer.startswith("gradient_tape") else ""
            out[name] = f"{grad}model/{max(hits, key=len)}/reduce"
    return out


def by_layer(times: collections.Counter, layers: dict[str, str], depth: int
             ) -> collections.Counter:
    """Op times summed per ``fwd``/``bwd`` layer path (``depth`` parts)."""
    out: collections.Counter = collections.Counter()
    for name, ps in times.items():
        op = layers.get(name)
        if op is None:
            out["?" + re.sub(r"[._]\d+$", "", name)] += ps
            continue
        parts = op.split("/")
        grad = parts[0] == "gradient_tape"
        parts = [p for p in parts if p != "gradient_tape"]
        out[("bwd " if grad else "fwd ") + "/".join(parts[1:depth])] += ps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("family")
    ap.add_argument("--series", type=int, default=4, help="series of 500 points")
    ap.add_argument("--depth", type=int, default=2, help="layer path parts to group by")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepcast-profile-") as tmp:
        folder = Path(tmp)
        wall = trace_epoch(args.family, args.series, folder)
        times = op_times(folder)
        rows = by_layer(times, op_layers(folder), args.depth)
    total = sum(times.values()) / 1e9
    print(f"{args.family}: traced epoch {wall:.2f} s wall, {total:.0f} ms of op time "
          f"over the compute threads ({time.perf_counter() - t0:.0f} s in all)")
    for key, ps in rows.most_common(args.top):
        print(f"{ps / 1e9:9.1f} ms {100 * ps / 1e9 / total:5.1f} %  {key}")


if __name__ == "__main__":
    main()
