"""Training windows that arrive epoch by epoch instead of from a panel in memory.

A trainer that holds the whole scaled panel (``features.windows.make_dataset``) cannot fit
a global model on more series than one process holds. A :class:`WindowStream` hands the
trainer each epoch's sampled windows, already gathered, from wherever the series live (the
shards of ``pipelines.shard_training``, kept in Dask workers): the trainer holds at most
two epochs of windows (the one it fits and the next, fetched meanwhile), whatever the
panel's size.

The sample of one panel is the in-memory path's exactly (:func:`sample_starts`): epoch
``e`` takes the first ``n`` starts of the stateless shuffle keyed ``(seed, e)``, so a
stream over one shard trains the same model as ``make_dataset`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from deepcast.features.windows import Epochs, window_inputs


@dataclass(frozen=True)
class WindowBatch:
    """Gathered windows: the model inputs (``window_inputs``' names) and targets (n, H)."""

    inputs: dict[str, np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, order: np.ndarray) -> WindowBatch:
        return WindowBatch({k: v[order] for k, v in self.inputs.items()}, self.targets[order])

    @staticmethod
    def concat(parts: list[WindowBatch]) -> WindowBatch:
        """The windows of ``parts`` one after the other."""
        if len(parts) == 1:
            return parts[0]
        keys = parts[0].inputs.keys()
        return WindowBatch({k: np.concatenate([p.inputs[k] for p in parts]) for k in keys},
                           np.concatenate([p.targets for p in parts]))


class WindowStream(Protocol):
    """Where a fit's windows come from when the trainer does not hold the panel."""

    @property
    def n_train(self) -> int: ...  # training windows of the whole panel

    @property
    def n_val(self) -> int: ...  # validation windows (0: monitor the training loss)

    @property
    def fingerprint(self) -> str: ...  # what a checkpoint of a fit on it must match

    def epoch(self, seed: int, epoch: int, n: int) -> WindowBatch: ...

    def validation(self) -> WindowBatch: ...


def sample_starts(starts: np.ndarray, n: int, seed: int, epoch: int, n_values: int,
                  geometry: tuple[int, int]) -> np.ndarray:
    """Epoch ``epoch``'s first ``n`` window starts, in the order the in-memory path draws
    them: the Philox stateless shuffle of ``starts`` keyed ``(seed, epoch)``, on positions
    of the dtype it uses for a panel of ``n_values`` points (``geometry``: lookback,
    horizon)."""
    import tensorflow as tf

    if n > len(starts):
        raise ValueError(f"cannot sample {n} of {len(starts)} windows without replacement")
    small = n_values < 2**31 - sum(geometry)
    dtype = np.int32 if small else np.int64
    key = tf.constant([seed, epoch], dtype=tf.int64)
    order = tf.random.experimental.stateless_shuffle(
        tf.constant(np.asarray(starts, dtype=dtype)), seed=key, alg="philox")
    return order[:n].numpy().astype(np.int64)


def gather(values: np.ndarray, starts: np.ndarray, geometry: tuple[int, int],
           covariates: Any = None, offsets: np.ndarray | None = None) -> WindowBatch:
    """The windows at ``starts`` as the trainer feeds them (``window_inputs``, plus the
    horizon's values as targets)."""
    lookback, horizon = geometry
    starts = np.asarray(starts, dtype=np.int64)
    inputs = window_inputs(values, starts, lookback, horizon, covariates, offsets)
    targets = values[starts[:, None] + lookback + np.arange(horizon)[None, :]]
    return WindowBatch(inputs, targets.astype(np.float32))


def stream_dataset(stream: WindowStream, names: list[str], teacher: bool, batch: int,
                   epochs: Epochs | None = None):
    """A ``tf.data.Dataset`` of ``(inputs, y)`` batches of ``stream``: its validation
    windows in order (no ``epochs``), or each epoch's sample of ``epochs.per_epoch``
    windows, the next epoch fetched while this one trains. Inputs are restricted to
    ``names`` (plus the targets as ``target`` for an autoregressive ``teacher``)."""
    import tensorflow as tf

    probe = stream.validation() if stream.n_val else stream.epoch(epochs.seed, 0, 1)
    keys = [k for k in names if k in probe.inputs]

    def spec(a: np.ndarray) -> Any:
        return tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype))

    inputs_spec = {k: spec(probe.inputs[k]) for k in keys}
    if teacher:
        inputs_spec["target"] = spec(probe.targets)
    signature = (inputs_spec, spec(probe.targets))

    def batches(part: WindowBatch) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for i in range(0, len(part), batch):
            y = part.targets[i:i + batch]
            x = {k: part.inputs[k][i:i + batch] for k in keys}
            yield ({**x, "target": y} if teacher else x), y

    def counted(ds, windows: int, times: int = 1):  # Keras warns on a stream of unknown size
        return ds.apply(tf.data.experimental.assert_cardinality(-(-windows // batch) * times))

    if epochs is None:
        return counted(tf.data.Dataset.from_generator(lambda: batches(stream.validation()),
                                                      output_signature=signature), stream.n_val)

    per_epoch = epochs.per_epoch or 0

    def every_epoch() -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        with ThreadPoolExecutor(1) as pool:
            span = list(epochs.span)
            ahead = pool.submit(stream.epoch, epochs.seed, span[0], per_epoch) if span else None
            for j, _ in enumerate(span):
                part = ahead.result()
                if j + 1 < len(span):
                    ahead = pool.submit(stream.epoch, epochs.seed, span[j + 1], per_epoch)
                yield from batches(part)

    ds = tf.data.Dataset.from_generator(every_epoch, output_signature=signature)
    return counted(ds, per_epoch, len(epochs.span)).prefetch(2)


@dataclass(frozen=True)
class PanelStream:
    """A :class:`WindowStream` over one panel in memory (a shard in a worker, or the tests'
    reference): what the shard stream asks of each shard."""

    values: np.ndarray
    train_starts: np.ndarray
    val_starts: np.ndarray
    geometry: tuple[int, int]
    covariates: Any = None
    offsets: np.ndarray | None = None

    @property
    def n_train(self) -> int:
        return len(self.train_starts)

    @property
    def n_val(self) -> int:
        return len(self.val_starts)

    @property
    def fingerprint(self) -> str:
        """A digest of every array it trains on (hashes the panel: asked for only by a
        checkpointed fit)."""
        import hashlib

        h = hashlib.sha256()
        arrays = [self.values, self.train_starts, self.val_starts, self.offsets]
        if self.covariates is not None:
            arrays += [getattr(self.covariates, k) for k in ("past", "future", "static",
                                                             "static_cat", "series")]
        for a in (np.ascontiguousarray(a) for a in arrays if a is not None):
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def epoch(self, seed: int, epoch: int, n: int) -> WindowBatch:
        starts = sample_starts(self.train_starts, n, seed, epoch, len(self.values),
                               self.geometry)
        return self.windows(starts)

    def validation(self) -> WindowBatch:
        return self.windows(self.val_starts)

    def windows(self, starts: np.ndarray) -> WindowBatch:
        return gather(self.values, starts, self.geometry, self.covariates, self.offsets)


@dataclass(frozen=True)
class Feed:
    """The ``tf.data`` streams of one fit: this model's inputs only (``input_names``; an
    autoregressive model's ``target`` gets the horizon's values), from the panel in memory
    or from ``data.stream``; ``geometry``: lookback, horizon, batch size."""

    input_names: list[str]
    data: Any  # forecasting.base.TrainingData
    geometry: tuple[int, int, int]

    def train(self, epochs: Epochs):
        return self._dataset(self.data.train_starts, epochs)

    def validation(self):
        return self._dataset(self.data.val_starts, None)

    def _dataset(self, starts: np.ndarray, epochs: Epochs | None):
        from deepcast.features.windows import make_dataset

        names = [k for k in self.input_names if k != "target"]
        teacher = "target" in self.input_names  # the horizon's values go in too
        data = self.data
        if data.stream is not None:
            return stream_dataset(data.stream, names, teacher, self.geometry[2], epochs)
        ds = make_dataset(data.values, starts, self.geometry, covariates=data.covariates,
                          offsets=data.offsets, epochs=epochs)
        if data.covariates is None and not teacher:
            return ds
        return ds.map(lambda x, y: ({**{k: x[k] for k in names},
                                     **({"target": y} if teacher else {})}, y))
