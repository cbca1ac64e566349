"""Where and how a Keras model trains: device, distribution strategy, precision, XLA.

``training.device: auto|cpu|gpu|tpu`` picks TPUStrategy, MirroredStrategy for several
GPUs, the default strategy on one GPU, or a CPU device scope. ``mixed_precision: auto`` is
on for accelerators (float16 on GPU, bfloat16 on TPU) and off on CPU, where it is slower.
``jit_compile: auto`` turns XLA on (measured on 2 CPU cores: recurrent epochs take half the
time) except under a multi-device strategy, where Keras cannot always compile the step.
``DEEPCAST_JIT_COMPILE=on|off`` sets what ``auto`` means on a machine (XLA's compile costs
seconds per model: more than it saves on small fits, as in a test suite).
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
JIT_ENV = "DEEPCAST_JIT_COMPILE"  # what jit_compile: auto means here: on, off or auto


@dataclass(frozen=True)
class Runtime:
    """The resolved training environment of one fit."""

    device: str  # "cpu", "gpu" or "tpu"
    n_replicas: int
    dtype_policy: str  # "float32", "mixed_float16" or "mixed_bfloat16"
    jit_compile: bool
    strategy: Any = None  # tf.distribute strategy; None: default (no scope needed)

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
    if jit_compile == "auto":
        jit_compile = _auto_jit(replicas)
    runtime = Runtime(kind, replicas, policy, bool(jit_compile), strategy)
    log.debug("training on %s x%d, %s, XLA %s", kind, replicas, policy,
             "on" if runtime.jit_compile else "off")
    return runtime


def _auto_jit(replicas: int) -> bool:
    """``jit_compile: auto``: as ``DEEPCAST_JIT_COMPILE`` says, else on for one device."""
    value = os.environ.get(JIT_ENV, "auto").strip().lower()
    if value in ("on", "1", "true"):
        return True
    if value in ("off", "0", "false"):
        return False
    if value != "auto":
        raise ConfigError(f"{JIT_ENV}={value!r} is not on, off or auto",
                          hint=f"set {JIT_ENV} to on, off or auto, or unset it")
    return replicas == 1
