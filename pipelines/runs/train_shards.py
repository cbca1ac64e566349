"""Training global models shard by shard: the trainer never holds the panel.

The driver plans shards of whole series (from the Parquet source's ID column only, or the
``data.sql`` query's counts), and a pool of workers (a Dask cluster under
``execution.runner: dask``, this process otherwise) reads, validates and prepares each
shard and keeps it (:mod:`deepcast.pipelines.shard_parts`). The driver merges the shards'
validation reports exactly (bad data stops the run naming the shards), their scalers and
covariate encoders, then fits each trainable model of the YAML on a :class:`ShardStream`:
every epoch, each shard hands over its share of a seeded sample of
``training.windows_per_epoch`` windows. Each shard then scores its holdout with the fitted
model, and the driver averages the per-series scores as ``train`` does.

With one shard, the windows, batches and model are those of the in-memory path
(``tests/integration/test_train_shards.py``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from deepcast.features.errors import ConfigError, DataError
from deepcast.forecasting.streams import WindowBatch
from deepcast.pipelines import shard_parts as parts
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.runs.base import PLAIN, RunInputs, Steps, report_dir


class ShardPool(Protocol):
    """Where shards live between calls: a Dask cluster's workers, or this process."""

    def keep(self, fn: Callable, items: list, *args: Any) -> list:
        """``fn(item, *args)`` for every item, each result kept where it was made; its
        handles."""
        ...

    def run(self, fn: Callable, handles: list, *args: Any, each: list | None = None
            ) -> list:
        """``fn(value, *args[, each[i]])`` where each handle's value lives; the results."""
        ...

    def release(self, handles: list) -> None:
        """Drop kept values."""
        ...


class InProcessPool:
    """A :class:`ShardPool` in this process (the serial runner, tests)."""

    def keep(self, fn: Callable, items: list, *args: Any) -> list:
        return [fn(item, *args) for item in items]

    def run(self, fn: Callable, handles: list, *args: Any, each: list | None = None
            ) -> list:
        extra = [()] * len(handles) if each is None else [(e,) for e in each]
        return [fn(h, *args, *x) for h, x in zip(handles, extra, strict=True)]

    def release(self, handles: list) -> None:
        handles.clear()


class ShardStream:
    """The windows of every shard, epoch by epoch (a ``forecasting.streams.WindowStream``):
    epoch ``e``'s sample of ``n`` windows is split over the shards by a seeded draw
    without replacement from all their windows, each shard samples its share in its
    worker, and the driver shuffles the pieces together."""

    def __init__(self, pool: ShardPool, handles: list, counts: list[int], val: list[int],
                 seed: int, val_limit: int) -> None:
        self.pool, self.handles, self.seed = pool, handles, seed
        self.counts = np.asarray(counts, dtype=np.int64)
        self.val_counts = np.asarray(val, dtype=np.int64)
        # one shard: every validation window, as the in-memory path scores
        self._n_val = int(sum(val)) if len(val) == 1 else min(int(sum(val)), val_limit)
        self._validation: WindowBatch | None = None

    @property
    def n_train(self) -> int:
        return int(self.counts.sum())

    @property
    def n_val(self) -> int:
        return self._n_val

    @property
    def fingerprint(self) -> str:
        """Every shard's digest in one (each worker hashes its arrays: asked for only by a
        checkpointed fit)."""
        digests = self.pool.run(parts.digest, self.handles)
        return hashlib.sha256("".join(digests).encode()).hexdigest()

    def shares(self, seed: int, epoch: int, n: int, counts: np.ndarray | None = None
               ) -> np.ndarray:
        """How many of epoch ``epoch``'s ``n`` windows each shard gives (of its ``counts``,
        default its training windows)."""
        counts = self.counts if counts is None else counts
        if len(counts) == 1:
            return np.array([n], dtype=np.int64)
        # n of all windows uniformly without replacement, counted per shard (numpy's
        # multivariate_hypergeometric refuses a billion windows or more)
        picked = np.random.default_rng([seed, epoch]).choice(int(counts.sum()), n,
                                                             replace=False)
        owner = np.searchsorted(np.cumsum(counts), picked, side="right")
        return np.bincount(owner, minlength=len(counts)).astype(np.int64)

    def epoch(self, seed: int, epoch: int, n: int) -> WindowBatch:
        shares = self.shares(seed, epoch, n)
        got = self.pool.run(parts.epoch_windows, self.handles, seed, epoch,
                            each=[int(k) for k in shares])
        batch = WindowBatch.concat([g for g in got if g is not None])
        if len(self.counts) == 1:
            return batch  # already in the in-memory path's order
        return batch.take(np.random.default_rng([seed, epoch, 1]).permutation(len(batch)))

    def validation(self) -> WindowBatch:
        """Every validation window in panel order, or a seeded sample of ``val_limit`` of
        them (the driver holds them for the whole fit: as many as one epoch's windows)."""
        if self._validation is None:
            shares = self.shares(self.seed, parts.VALIDATION, self._n_val, self.val_counts)
            got = self.pool.run(parts.validation_windows, self.handles, self.seed,
                                each=[int(k) for k in shares])
            self._validation = WindowBatch.concat([g for g in got if g is not None])
        return self._validation


@dataclass(frozen=True)
class ShardedFit:
    """One model fit from shards and scored on every shard's holdout."""

    name: str
    family: str
    predictor: Any  # forecasting.predictor.Predictor
    history: dict[str, list[float]]
    metrics: dict[str, float]
    per_series: pd.DataFrame
    fit_seconds: float


@dataclass(frozen=True)
class ShardTraining:
    """What training from shards made: the fits, the merged validation report, and what
    it rests on (shards, series, training windows)."""

    fits: list[ShardedFit]
    validation: Any
    shards: int
    series: int
    train_windows: int
    notes: list[str] = field(default_factory=list)
    #: the drift reference profile of the rows as read, merged from the shards' (what
    #: ``train`` saves with its models for ``retrain``'s drift check)
    profile: dict[str, Any] = field(default_factory=dict)


def check_shard_training(cfg: PipelineConfig, inputs: RunInputs) -> list[Any]:
    """The YAML's trainable model entries; a ConfigError for what shard training cannot
    do (a source other than Parquet, a query or a frame; no sample size per epoch; a
    hierarchy; nothing trainable)."""
    from deepcast.forecasting.models import families
    from deepcast.pipelines.parquet_dataset import is_parquet

    source = None if inputs.in_memory else inputs.source(cfg)
    if source is not None and not is_parquet(source):
        raise ConfigError(f"training from shards reads each shard's series from Parquet (or "
                          f"a data.sql query); {source} is not Parquet",
                          hint="convert the data to Parquet (pandas: df.to_parquet(...)), "
                          "or train it with deepcast train")
    if cfg.training.windows_per_epoch is None:
        raise ConfigError("training from shards samples each epoch's windows across the "
                          "shards; training.windows_per_epoch is not set",
                          hint="set training.windows_per_epoch (e.g. 200000)")
    if cfg.hierarchy is not None:
        raise ConfigError("a hierarchy is reconciled across all its series at once; "
                          "training from shards sees one shard at a time",
                          hint="train a hierarchy from one file (execution.runner: serial)")
    entries = [m for m in cfg.models if families()[m.type].trainable]
    if not entries:
        raise ConfigError("training from shards fits global neural models; the YAML's "
                          "models train none", hint="add a neural model (e.g. type: nhits)")
    return entries


def train_in_shards(cfg: PipelineConfig, inputs: RunInputs, pool: ShardPool,
                    steps: Steps = PLAIN) -> ShardTraining:
    """Validate, prepare, fit and score every trainable model of ``cfg`` shard by shard
    (see the module's docstring); ValidationFailed when a shard's data is bad."""
    from deepcast.pipelines.runs.forecast_shards import merged_report, plan, shard_slice
    from deepcast.pipelines.runs.validate_shards import check_one_freq

    entries = check_shard_training(cfg, inputs)
    id_col = cfg.data.id_col  # of the source, or of the frame given in the YAML's names
    shards = steps.io("plan-shards", plan, cfg, inputs, id_col)
    where = report_dir(cfg, inputs)
    jobs = [parts.PartJob(cfg, s, None if inputs.in_memory else inputs.source(cfg),
                          shard_slice(inputs, id_col, s), str(where)) for s in shards]
    handles, summaries = steps.run("prepare-shards", _prepared, pool, jobs)
    prepared = handles
    check_one_freq([s.report for s in summaries])
    report = merged_report(cfg, summaries, [s.label for s in shards], where,
                           inputs.label(cfg), whole_panel=True)
    if report.freq is not None:
        cfg = cfg.with_freq(report.freq)
    encoder = parts.merge_encoders(summaries)
    if len(shards) > 1 and encoder is not None:
        # the prepared parts stay referenced: they are the aligned ones' lineage, which a
        # worker lost mid-run is made again from (they share every array but a few)
        prepared, handles = handles, pool.keep(parts.aligned, handles, encoder)
    stream = ShardStream(pool, handles, [s.n_train for s in summaries],
                         [s.n_val for s in summaries],
                         cfg.training.seed, cfg.training.windows_per_epoch)
    if not stream.n_train:
        raise DataError("no training windows in any shard",
                        hint="lower features.lookback / training.val_size / "
                        "evaluation.test_size, or use data.short_series: pad")
    fits = []
    for e in entries:
        predictor, history, seconds = steps.run(f"fit-{e.label}", _fit, cfg, e, stream,
                                                summaries, encoder)
        metrics, per_series = steps.run(f"score-{e.label}", _score, pool, handles, predictor)
        fits.append(ShardedFit(e.label, e.type, predictor, history, metrics, per_series,
                               seconds))
    notes = [f"{m.label}: not trained from shards (statistical models and ensembles need "
             "the whole panel in one process)" for m in cfg.models if m not in entries]
    pool.release(handles)
    if prepared is not handles:
        pool.release(prepared)
    from deepcast.pipelines.drift import merge_profiles

    return ShardTraining(fits, report, len(shards), sum(s.series for s in summaries),
                         stream.n_train, notes, merge_profiles([s.profile for s in summaries]))


def _prepared(pool: ShardPool, jobs: list[parts.PartJob]
              ) -> tuple[list, list[parts.PartSummary]]:
    """Every shard read, validated and prepared where it stays; its summaries."""
    handles = pool.keep(parts.load_part, jobs)
    return handles, pool.run(parts.summarize, handles)


def _fit(cfg: PipelineConfig, entry: Any, stream: ShardStream,
         summaries: list[parts.PartSummary], encoder: Any
         ) -> tuple[Any, dict[str, list[float]], float]:
    """Fit one model entry on the stream: its predictor (the panel's scaler and encoder),
    loss history and fit time."""
    from deepcast.forecasting.base import TrainingData
    from deepcast.forecasting.models import build_forecaster
    from deepcast.forecasting.predictor import Predictor
    from deepcast.pipelines.ingest import column_spec
    from deepcast.pipelines.modelling import (
        inputs_of,
        min_history,
        training_settings,
        window_spec,
    )

    f, d = cfg.features, cfg.data
    forecaster = build_forecaster(entry.type, entry.label, window_spec(cfg), entry.options(),
                                  inputs_of(encoder))
    forecaster.use_history(max(s.longest for s in summaries))
    empty = np.zeros(0, dtype=np.int64)
    t0 = time.perf_counter()
    history = forecaster.fit(TrainingData(np.zeros(0, np.float32), empty, empty,
                                          stream=stream), training_settings(cfg))
    seconds = time.perf_counter() - t0
    predictor = Predictor(forecaster, _scaler(summaries, cfg), column_spec(d), encoder,
                          min_history(cfg) or f.lookback)
    predictor.nonnegative = all(s.nonnegative for s in summaries if s.series)
    return predictor, history, seconds


def _score(pool: ShardPool, handles: list, predictor: Any
           ) -> tuple[dict[str, float], pd.DataFrame]:
    """The predictor's holdout scores, each shard's forecast and scored in its worker."""
    scores = pool.run(parts.score_part, handles, parts.bundle_bytes(predictor))
    return _merged_scores([s for s in scores if s is not None])


def _merged_scores(scores: list[parts.PartScore]) -> tuple[dict[str, float], pd.DataFrame]:
    """The holdout metrics of the panel from its shards': each the mean over series (as
    ``forecasting.evaluate.score_test``), the weighted quantile loss from summed parts."""
    from deepcast.features.schema import ID
    from deepcast.forecasting.metrics import series_mean, wql_of

    if not scores:
        return {}, pd.DataFrame()
    per_series = pd.concat([s.per_series for s in scores], ignore_index=True)
    metrics = {c: series_mean(per_series[c].to_numpy(np.float64))
               for c in per_series.columns if c != ID}
    sums = [s.wql_parts for s in scores if s.wql_parts is not None]
    if sums:
        metrics["wql"] = wql_of(np.sum([s[0] for s in sums], axis=0), sum(s[1] for s in sums))
    return metrics, per_series


def _scaler(summaries: list[parts.PartSummary], cfg: PipelineConfig) -> Any:
    """The panel's scaler: every shard's per-series statistics in one."""
    from deepcast.features.scalers import SeriesScaler

    merged: dict[str, Any] = {}
    for s in summaries:
        for key, value in s.scaler.items():
            merged[key] = [*merged.get(key, []), *value] if isinstance(value, list) else value
    if not merged:
        return SeriesScaler(cfg.features.scaler, cfg.features.target_transform)
    return SeriesScaler.from_dict(merged)
