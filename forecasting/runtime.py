"""Where and how a Keras model trains: device, distribution strategy, precision, XLA.

``training.device: auto|cpu|gpu|tpu`` picks TPUStrategy, MirroredStrategy for several
GPUs, the default strategy on one GPU, or a CPU device scope. ``mixed_precision: auto`` is
on for accelerators (float16 on GPU, bfloat16 on TPU) and off on CPU, where it is slower.
``jit_compile: auto`` turns XLA on for one accelerator, off under a multi-device strategy
(where Keras cannot always compile the step), and on a CPU only for a fit of at least
``XLA_MIN_STEPS`` planned training steps: XLA's compile costs 2-7 s per model on 2 CPU
cores, more than its faster steps save on a short fit (a warm start's 5 epochs, a small
panel; see :meth:`Runtime.xla_for`). ``DEEPCAST_JIT_COMPILE=on|off`` sets what ``auto``
means on a machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from deepcast.features.errors import ConfigError

log = logging.getLogger("deepcast")

DEVICES = ("auto", "cpu", "gpu", "tpu")
MIN_STEPS_ENV = "DEEPCAST_MIN_STEPS_PER_EPOCH"  # what min_steps_per_epoch: auto means
MIN_STEPS_AUTO = 50
JIT_ENV = "DEEPCAST_JIT_COMPILE"  # what jit_compile: auto means here: on, off or auto
# planned steps (epochs x steps per epoch) from which XLA pays on a CPU: its compile costs
# about as much as it saves over 400 (NHITS) to 1,000 (DLinear) steps measured on 2 cores,
# and early stopping usually ends a fit well before its planned steps
XLA_MIN_STEPS = 2000


@dataclass(frozen=True)
class Runtime:
    """The resolved training environment of one fit."""

    device: str  # "cpu", "gpu" or "tpu"
    n_replicas: int
    dtype_policy: str  # "float32", "mixed_float16" or "mixed_bfloat16"
    jit_compile: bool
    strategy: Any = None  # tf.distribute strategy; None: default (no scope needed)
    jit_by_steps: bool = False  # 'auto' on a CPU: XLA decided per fit by its planned steps

    def xla_for(self, planned_steps: int) -> bool:
        """XLA for a fit of ``planned_steps`` training steps (``epochs x steps per epoch``):
        the resolved setting, or under ``auto`` on a CPU on from ``XLA_MIN_STEPS``."""
        return planned_steps >= XLA_MIN_STEPS if self.jit_by_steps else self.jit_compile

    @property
    def mixed(self) -> bool:
        return self.dtype_policy != "float32"

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build and compile inside this: strategy scope and dtype policy, both restored."""
        import keras

        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)
        try:
            with self.strategy.scope() if self.strategy is not None else contextlib.nullcontext():
                yield
        finally:
            keras.config.set_dtype_policy(previous)


def _tpu_strategy():
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None
    return tf.distribute.TPUStrategy(resolver)


def resolve_runtime(device: str = "auto", mixed_precision: str | bool = "auto",
                    jit_compile: str | bool = "auto") -> Runtime:
    """Pick strategy, precision and XLA for ``device``; a device asked for but absent is a
    :class:`ConfigError` (not a silent CPU fallback)."""
    import tensorflow as tf

    if device not in DEVICES:
        raise ConfigError(f"training.device: unknown device {device!r}",
                          hint=f"use one of {', '.join(DEVICES)}")
    strategy, kind, replicas = None, "cpu", 1
    if device == "tpu":
        strategy = _tpu_strategy()
        if strategy is None:
            raise ConfigError("training.device is 'tpu' but no TPU was found",
                              hint="use device: auto, or run on a TPU host")
        kind, replicas = "tpu", strategy.num_replicas_in_sync
    elif device in ("auto", "gpu"):
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            kind, replicas = "gpu", len(gpus)
            if len(gpus) > 1:
                strategy = tf.distribute.MirroredStrategy()
        elif device == "gpu":
            raise ConfigError("training.device is 'gpu' but TensorFlow sees no GPU",
                              hint="install the gpu extra (pip install 'deepcast[gpu]') and "
                              "check nvidia-smi, or use device: auto")
    if device == "cpu":
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    if mixed_precision == "auto":
        mixed_precision = kind != "cpu"
    policy = {"gpu": "mixed_float16", "tpu": "mixed_bfloat16"}.get(kind, "mixed_bfloat16") \
        if mixed_precision else "float32"
    by_steps = jit_compile == "auto" and kind == "cpu" and _jit_env() == "auto"
    if jit_compile == "auto":
        jit_compile = _auto_jit(replicas)
    runtime = Runtime(kind, replicas, policy, bool(jit_compile), strategy, by_steps)
    log.debug("training on %s x%d, %s, XLA %s", kind, replicas, policy,
              "by planned steps" if runtime.jit_by_steps
              else "on" if runtime.jit_compile else "off")
    return runtime


def _jit_env() -> str:
    """``DEEPCAST_JIT_COMPILE`` (on, off or auto; unset: auto), normalised."""
    value = os.environ.get(JIT_ENV, "auto").strip().lower()
    return {"1": "on", "true": "on", "0": "off", "false": "off"}.get(value, value)


def _auto_jit(replicas: int) -> bool:
    """``jit_compile: auto``: as ``DEEPCAST_JIT_COMPILE`` says, else on for one device."""
    value = _jit_env()
    if value == "on":
        return True
    if value == "off":
        return False
    if value != "auto":
        raise ConfigError(f"{JIT_ENV}={value!r} is not on, off or auto",
                          hint=f"set {JIT_ENV} to on, off or auto, or unset it")
    return replicas == 1


def min_steps_per_epoch(value: str | int) -> int:
    """``training.min_steps_per_epoch``: an explicit count, or for ``auto`` what
    ``DEEPCAST_MIN_STEPS_PER_EPOCH`` says (unset: 50); ConfigError for a bad variable."""
    if value != "auto":
        return int(value)
    raw = os.environ.get(MIN_STEPS_ENV, "").strip()
    if not raw:
        return MIN_STEPS_AUTO
    if not raw.isdigit():
        raise ConfigError(f"{MIN_STEPS_ENV}={raw!r} is not a whole number >= 0",
                          hint=f"unset it (auto: {MIN_STEPS_AUTO}) or give e.g. 0")
    return int(raw)
