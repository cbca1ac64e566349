"""Training global models shard by shard: the trainer never holds the panel.

The driver plans shards of whole series (from the Parquet source's ID column only, or the
``data.sql`` query's counts), and a pool of workers (a Dask cluster under
``execution.runner: dask``, this process otherwise) reads, validates and prepares each
shard and keeps it (:mod:`deepcast.pipelines.shard_parts`). The driver merges the shards'
validation reports exactly (bad data stops the run naming the shards), their scalers and
covariate encoders, then fits each model of the YAML on a :class:`ShardStream` (a model
that does not train is only built):
every epoch, each shard hands over its share of a seeded sample of
``training.windows_per_epoch`` windows. Each shard then scores its holdout with the fitted
model, and the driver averages the per-series scores as ``train`` does.

With one shard, the windows, batches and model are those of the in-memory path
(``tests/integration/test_train_shards.py``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.errors import ConfigError, DataError
from deepcast.forecasting.streams import WindowBatch
from deepcast.pipelines import shard_parts as parts
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.runs.base import PLAIN, RunInputs, Steps, report_dir
from deepcast.pipelines.runs.pools import ShardPool
from deepcast.pipelines.shard_scores import HoldoutScores, calibrate, merged_scores


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


@dataclass
class PreparedShards:
    """Every shard of a run read, validated and prepared where it stays (``handles`` in
    ``pool``), what the driver merged from them, and the window stream over them. The
    config is the validated one (``data.freq: auto`` resolved)."""

    cfg: PipelineConfig
    pool: ShardPool
    handles: list
    summaries: list[parts.PartSummary]
    report: Any
    encoder: Any
    stream: ShardStream
    lineage: list  # the parts before alignment (what a lost aligned part is made from)
    scaler: Any  # the panel's: every shard's per-series statistics in one

    @property
    def n_shards(self) -> int:
        return len(self.handles)

    @property
    def n_series(self) -> int:
        return sum(s.series for s in self.summaries)

    @property
    def n_rows(self) -> int:
        return sum(s.rows for s in self.summaries)

    @property
    def raw_rows(self) -> int:
        return sum(s.raw_rows for s in self.summaries)

    @property
    def sha256(self) -> str:
        """A digest of the validated rows: every shard's, in shard order (with one shard,
        its frame's, as ``train`` digests the panel)."""
        if len(self.summaries) == 1:
            return self.summaries[0].sha256
        return hashlib.sha256("".join(s.sha256 for s in self.summaries).encode()).hexdigest()

    @cached_property
    def profile(self) -> dict[str, Any]:
        """The drift reference profile of the rows as read, merged from the shards'."""
        from deepcast.pipelines.drift import merge_profiles

        return merge_profiles([s.profile for s in self.summaries])

    def fit(self, entry: Any, on_epoch: Callable | None = None, seed: int | None = None
            ) -> tuple[Any, dict[str, list[float]], float]:
        """Fit one model entry on the stream: its predictor, loss history and fit time
        (``on_epoch(epoch, logs)`` after each epoch; ``seed``: other than
        ``training.seed``, a bagged member's). Resumed from its checkpoint
        (``training.checkpoint``: the shards' digests are part of its fingerprint). A model
        that does not train (a baseline; a statistical model, fitted per series at
        forecast time) is built only."""
        from deepcast.forecasting.base import TrainingData
        from deepcast.forecasting.models import build_forecaster, families
        from deepcast.pipelines.modelling import (
            checkpoint_dir,
            inputs_of,
            training_settings,
            window_spec,
        )

        cfg = self.cfg
        settings = training_settings(cfg)
        if seed is not None:
            settings = replace(settings, seed=seed)
        trainable = families()[entry.type].trainable
        forecaster = build_forecaster(entry.type, entry.label, window_spec(cfg),
                                      entry.options(),
                                      inputs_of(self.encoder) if trainable else None)
        forecaster.use_history(max(s.longest for s in self.summaries))
        empty = np.zeros(0, dtype=np.int64)
        t0 = time.perf_counter()
        history: dict[str, list[float]] = {}
        if forecaster.trainable:
            data = TrainingData(np.zeros(0, np.float32), empty, empty, stream=self.stream)
            history = forecaster.fit(data, settings, on_epoch,
                                     checkpoint_dir(cfg, entry.label))
        return self.predictor(forecaster), history, time.perf_counter() - t0

    def ensemble(self, spec: Any, fitted: dict[str, Any], steps: Steps = PLAIN
                 ) -> tuple[Any, dict[str, list[float]], float]:
        """One ``ensemble:`` entry (a method of :data:`SHARDABLE`) of the ``fitted``
        predictors by name; bagging fits its members here, seeds ``training.seed + i``."""
        from deepcast.forecasting.ensemble import build_ensemble

        t0 = time.perf_counter()
        if spec.method == "bagging":
            members = []
            for i in range(spec.n_members):
                entry = spec.model.model_copy(update={"name": f"{spec.name}_{i}"})
                predictor, _, _ = steps.run(f"fit-{entry.label}", self.fit, entry, None,
                                            self.cfg.training.seed + i)
                members.append(predictor.forecaster)
        else:
            members = [fitted[m].forecaster for m in spec.members]
        ensemble = build_ensemble(spec.name, spec.method, members)
        return self.predictor(ensemble), {}, time.perf_counter() - t0

    def predictor(self, forecaster: Any) -> Any:
        """``forecaster`` with the panel's scaler, encoder and columns: a served model."""
        from deepcast.forecasting.predictor import Predictor
        from deepcast.pipelines.ingest import column_spec
        from deepcast.pipelines.modelling import min_history

        cfg = self.cfg
        predictor = Predictor(forecaster, self.scaler, column_spec(cfg.data), self.encoder,
                              min_history(cfg) or cfg.features.lookback)
        predictor.nonnegative = all(s.nonnegative for s in self.summaries if s.series)
        return predictor

    def score(self, predictor: Any, levels: Sequence[float] = ()) -> HoldoutScores:
        """The predictor's holdout scores, each shard's forecast and scored in its worker;
        with conformal ``levels``, the predictor is calibrated on every shard's holdout
        residuals (in place), as ``train`` calibrates on the panel's."""
        metric = self.cfg.evaluation.metric
        scores = [s for s in self.pool.run(parts.score_part, self.handles,
                                           parts.bundle_bytes(predictor), metric,
                                           bool(levels))
                  if s is not None]
        if levels:
            calibrate(predictor, scores, levels)
        return merged_scores(scores)

    def example(self) -> pd.DataFrame:
        """A few series' rows in the served model's input format (its signature)."""
        first = next(i for i, s in enumerate(self.summaries) if s.series)
        return self.pool.run(parts.example, [self.handles[first]])[0]

    def release(self) -> None:
        self.pool.release(self.handles)
        if self.lineage is not self.handles:
            self.pool.release(self.lineage)


def check_shard_training(cfg: PipelineConfig, inputs: RunInputs) -> None:
    """A ConfigError for what shard training cannot do (a source other than Parquet, a
    query or a frame; no sample size per epoch; a hierarchy)."""
    from deepcast.pipelines.parquet_dataset import is_parquet

    source = None if inputs.in_memory else inputs.source(cfg)
    if source is not None and not is_parquet(source):
        raise ConfigError(f"training from shards reads each shard's series from Parquet (or "
                          f"a data.sql query); {source} is not Parquet",
                          hint="convert the data to Parquet (pandas: df.to_parquet(...)), "
                          "or train it with execution.runner: serial")
    if cfg.training.windows_per_epoch is None:
        raise ConfigError("training from shards samples each epoch's windows across the "
                          "shards; training.windows_per_epoch is not set",
                          hint="set training.windows_per_epoch (e.g. 200000)")
    if cfg.hierarchy is not None:
        raise ConfigError("a hierarchy is reconciled across all its series at once; "
                          "training from shards sees one shard at a time",
                          hint="train a hierarchy from one file (execution.runner: serial)")


def prepare_shards(cfg: PipelineConfig, inputs: RunInputs, pool: ShardPool,
                   steps: Steps = PLAIN, windows: int = 0) -> PreparedShards:
    """Plan the shards, read, validate and prepare each in the pool, merge what they send
    back; ValidationFailed (the merged report, naming the shards) when one's data is bad.
    ``windows``: a backtest's count (each shard prepared to fit on what precedes its first
    cut-off). The caller releases them."""
    from deepcast.pipelines.runs.forecast_shards import merged_report, plan, shard_slice
    from deepcast.pipelines.runs.validate_shards import check_one_freq

    id_col = cfg.data.id_col  # of the source, or of the frame given in the YAML's names
    shards = steps.io("plan-shards", plan, cfg, inputs, id_col)
    where = report_dir(cfg, inputs)
    jobs = [parts.PartJob(cfg, s, None if inputs.in_memory else inputs.source(cfg),
                          shard_slice(inputs, id_col, s), str(where), windows)
            for s in shards]
    handles, summaries = steps.run("prepare-shards", _prepared, pool, jobs)
    lineage = handles
    try:
        check_one_freq([s.report for s in summaries])
        report = merged_report(cfg, summaries, [s.label for s in shards], where,
                               inputs.label(cfg), whole_panel=True)
        if report.freq is not None:
            cfg = cfg.with_freq(report.freq)
        encoder = parts.merge_encoders(summaries)
        if len(shards) > 1 and encoder is not None:
            # the prepared parts stay referenced: they are the aligned ones' lineage, which
            # a worker lost mid-run is made again from (they share every array but a few)
            handles = pool.keep(parts.aligned, lineage, encoder)
        stream = ShardStream(pool, handles, [s.n_train for s in summaries],
                             [s.n_val for s in summaries],
                             cfg.training.seed, cfg.training.windows_per_epoch)
        if not stream.n_train:
            raise DataError("no training windows in any shard",
                            hint="lower features.lookback / training.val_size / "
                            "evaluation.test_size, or use data.short_series: pad")
    except BaseException:
        pool.release(handles)
        if lineage is not handles:
            pool.release(lineage)
        raise
    return PreparedShards(cfg, pool, handles, summaries, report, encoder, stream, lineage,
                          parts.merge_scalers(summaries, cfg))


def train_in_shards(cfg: PipelineConfig, inputs: RunInputs, pool: ShardPool,
                    steps: Steps = PLAIN) -> ShardTraining:
    """Validate, prepare, fit and score every model of ``cfg`` shard by shard (see the
    module's docstring; untracked: ``deepcast train`` tracks, gates and registers them
    through :mod:`.train_from_shards`); ValidationFailed when a shard's data is bad."""
    check_shard_training(cfg, inputs)
    shards = prepare_shards(cfg, inputs, pool, steps)
    try:
        fits = []
        builds = [(e.label, e.type, lambda e=e: steps.run(f"fit-{e.label}", shards.fit, e))
                  for e in cfg.models]
        builds += [(s.name, f"ensemble-{s.method}", lambda s=s: shards.ensemble(
            s, {f.name: f.predictor for f in fits}, steps))
            for s in cfg.ensemble if s.method in SHARDABLE]
        for name, family, build in builds:
            predictor, history, seconds = build()
            scores = steps.run(f"score-{name}", shards.score, predictor,
                               cfg.evaluation.conformal)
            fits.append(ShardedFit(name, family, predictor, history, scores.metrics,
                                   scores.per_series, seconds))
        return ShardTraining(fits, shards.report, shards.n_shards, shards.n_series,
                             shards.stream.n_train, unsupported(cfg), shards.profile)
    finally:
        shards.release()


#: the ensemble methods trained from shards: those that need no backtest of their members
SHARDABLE = ("mean", "median", "bagging")


def unsupported(cfg: PipelineConfig) -> list[str]:
    """What training from shards leaves out of the YAML, one note each."""
    return [f"ensemble {e.name} ({e.method}): not trained from shards (its weights come "
            "from a backtest of its members on the whole panel)" for e in cfg.ensemble
            if e.method not in SHARDABLE]


def _prepared(pool: ShardPool, jobs: list[parts.PartJob]
              ) -> tuple[list, list[parts.PartSummary]]:
    """Every shard read, validated and prepared where it stays; its summaries."""
    handles = pool.keep(parts.load_part, jobs)
    try:
        return handles, pool.run(parts.summarize, handles)
    except BaseException:  # bad data in a worker (a DataError): nothing stays kept
        pool.release(handles)
        raise
