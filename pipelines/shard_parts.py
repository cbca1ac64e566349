"""What each worker holds of a panel trained shard by shard, and what it sends back.

A worker reads its shard of whole series, validates it and prepares it exactly as ``train``
prepares a panel (``modelling.prepare``: per-series scaling on the training span, padding,
covariates, window starts, the holdout): per-series steps give the same numbers on a shard
as on the panel. What is not per series is merged by the driver from the shards' summaries
(:func:`merge_encoders`: the series-ID codes, categorical vocabularies and numeric
covariate statistics) and sent back once (:func:`aligned`). The prepared shard then stays
in the worker: each epoch it hands over a sample of its windows (:func:`epoch_windows`),
and at the end it scores its holdout with the fitted model (:func:`score_part`).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.covariates import CovariateEncoder
from deepcast.forecasting.streams import PanelStream, WindowBatch, sample_starts
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.shards import Shard

VALIDATION = 2**40  #: the epoch key of the validation sample (no training epoch's)


@dataclass(frozen=True)
class PartJob:
    """One shard to prepare: where its rows are (``source``: a Parquet file or dataset;
    ``frame``: its rows in memory, coerced; neither: the ``data.sql`` query) and the
    folder of its validation report."""

    cfg: PipelineConfig
    shard: Shard
    source: str | None
    frame: pd.DataFrame | None
    report_dir: str
    #: a backtest's window count: fit on what precedes each series' first cut-off, and
    #: keep the validated rows to forecast the windows from (0: ``train``'s holdout split)
    windows: int = 0

    @property
    def label(self) -> str:
        return self.shard.label


@dataclass
class Part:
    """A prepared shard, kept in its worker (``prep`` None: validation failed)."""

    index: int
    label: str  # how errors name it (``Shard.label``)
    report: Any
    last_ds: pd.Series
    profile: dict[str, Any]  # the drift reference profile of its rows as read
    prep: Any = None  # pipelines.modelling.PreparedData
    stream: PanelStream | None = None
    sha256: str = ""  # of its validated rows (``ingest.frame_sha256``)
    #: the cut-offs the part is scored at (``gate.GateWindows``: the validated rows, each
    #: series' history length at each cut-off, their scales): a backtest's, made with the
    #: part, or the promotion gate's, made on first use
    windows: Any = None
    raw_rows: int = 0  # rows as read, before validation


@dataclass(frozen=True)
class NumericStats:
    """Count, mean and sum of squared deviations of a covariate's training values: what
    two shards' statistics merge from exactly (Chan et al.)."""

    n: int
    mean: float
    m2: float

    @staticmethod
    def of(values: np.ndarray) -> NumericStats:
        v = values[np.isfinite(values)]
        mean = float(v.mean()) if len(v) else 0.0
        return NumericStats(len(v), mean, float(((v - mean) ** 2).sum()))

    def merge(self, other: NumericStats) -> NumericStats:
        n = self.n + other.n
        if not n:
            return self
        delta = other.mean - self.mean
        return NumericStats(n, self.mean + delta * other.n / n,
                            self.m2 + other.m2 + delta**2 * self.n * other.n / n)


@dataclass(frozen=True)
class PartSummary:
    """What a worker sends back about its prepared shard: its report and last dates (the
    validation merge's input), its drift profile, window and point counts, its scaler and
    encoder (the global ones are merged from these)."""

    index: int
    report: Any
    last_ds: pd.Series
    profile: dict[str, Any] = field(default_factory=dict)
    series: int = 0
    longest: int = 0
    n_train: int = 0
    n_val: int = 0
    rows: int = 0  # validated rows
    raw_rows: int = 0  # rows as read
    sha256: str = ""
    nonnegative: bool = True
    scaler: dict[str, Any] = field(default_factory=dict)
    encoder: CovariateEncoder | None = None
    numeric: dict[str, NumericStats] = field(default_factory=dict)


def load_part(job: PartJob) -> Part:
    """Read, validate and prepare one shard (in a worker); the result stays there."""
    from deepcast.features.errors import DataError
    from deepcast.features.schema import DS, ID
    from deepcast.pipelines.backtest_fits import history_before
    from deepcast.pipelines.drift import profile_window, reference_profile
    from deepcast.pipelines.ingest import frame_sha256
    from deepcast.pipelines.modelling import check_counts, prepare
    from deepcast.pipelines.runs.base import _coerced
    from deepcast.pipelines.runs.forecast_shards import read_rows
    from deepcast.pipelines.validate import validate_long_frame

    cfg = job.cfg
    raw = _coerced(cfg.data, job.frame) if job.frame is not None else \
        read_rows(cfg, job.shard, job.source)
    where = Path(job.report_dir) / f"shard-{job.shard.index:05d}"
    clean, report = validate_long_frame(raw, cfg, where, panel=False)
    last = clean.groupby(ID, sort=True)[DS].max()
    profile = reference_profile(raw, profile_window(cfg.drift, cfg.features.lookback))
    if not report.success or clean.empty:
        return Part(job.shard.index, job.label, report, last, profile, raw_rows=len(raw))
    if report.freq is not None and cfg.data.freq == "auto":
        cfg = cfg.with_freq(report.freq)
    windows = None
    try:
        if job.windows:  # a backtest's fit: the history before every first cut-off
            windows = _backtest_windows(clean, cfg, job.windows)
            bt = cfg.evaluation.backtest
            prep = prepare(history_before(clean, windows.cuts[:, 0], bt.train_size
                                          if bt.window == "sliding" else None),
                           cfg, holdout=0)
        else:
            prep = prepare(clean, cfg)
        for entry in cfg.models:  # a count head needs counts (named by series)
            check_counts(getattr(entry, "distribution", None), prep)
    except DataError as exc:
        exc.args = (f"{job.label}: {exc.args[0]}", *exc.args[1:])
        raise
    f = cfg.features
    stream = PanelStream(prep.scaled.values, prep.train_starts, prep.val_starts,
                         (f.lookback, f.horizon), prep.covariates, prep.scaled.offsets)
    return Part(job.shard.index, job.label, report, last, profile, prep, stream,
                frame_sha256(clean), windows, len(raw))


def _backtest_windows(clean: pd.DataFrame, cfg: PipelineConfig, windows: int) -> Any:
    """A backtest's ``windows`` cut-offs on the validated rows, with their scales; a
    DataError naming the series too short for the first."""
    from deepcast.features.windows import panel_from_frame
    from deepcast.pipelines.backtest_fits import backtest_cutoffs, check_first_cutoff
    from deepcast.pipelines.gate import GateWindows
    from deepcast.pipelines.selection import with_windows

    cfg = with_windows(cfg, windows)
    panel = panel_from_frame(clean)
    n = cfg.lengths
    cuts = backtest_cutoffs(panel.lengths, n.n_windows, n.step, n.horizon)
    check_first_cutoff(panel.ids, cuts, cfg)
    return GateWindows.at(clean, cuts, cfg, panel)


def summarize(part: Part) -> PartSummary:
    """The part's summary (sent back to the driver)."""
    from deepcast.forecasting.evaluate import split_holdout

    prep = part.prep
    if prep is None:
        return PartSummary(part.index, part.report, part.last_ds, part.profile,
                           raw_rows=part.raw_rows)
    numeric: dict[str, NumericStats] = {}
    if prep.encoder is not None:
        train = split_holdout(prep.df, prep.holdout.size if prep.holdout else 0)[0]
        numeric = {c: NumericStats.of(pd.to_numeric(train[c], errors="coerce")
                                      .to_numpy(np.float64)) for c in prep.encoder.numeric}
    return PartSummary(part.index, part.report, part.last_ds, part.profile,
                       prep.panel.n_series,
                       int(prep.panel.lengths.max(initial=0)), part.stream.n_train,
                       part.stream.n_val, len(prep.df), part.raw_rows, part.sha256,
                       prep.nonnegative,
                       prep.scaler.to_dict(),
                       prep.encoder, numeric)


def merge_encoders(summaries: list[PartSummary]) -> CovariateEncoder | None:
    """The panel's encoder from the shards': series codes in shard order (the shards are
    in sorted-ID order, as the panel's encoder numbers them), the union of each
    categorical's values, numeric statistics merged over all training rows. One shard's
    encoder is returned as it is."""
    parts = [s for s in summaries if s.encoder is not None]
    if len(parts) <= 1:
        return parts[0].encoder if parts else None
    first = parts[0].encoder
    ids = [i for s in parts for i in s.encoder.ids]
    vocab = {c: {v: k + 1 for k, v in enumerate(sorted({v for s in parts
                                                         for v in s.encoder.vocab[c]}))}
             for c in first.vocab}
    numeric = {}
    for col in first.numeric:
        stats = parts[0].numeric[col]
        for s in parts[1:]:
            stats = stats.merge(s.numeric[col])
        std = float(np.sqrt(stats.m2 / stats.n)) if stats.n else 1.0
        numeric[col] = (stats.mean, std if std > 1e-12 else 1.0)
    return CovariateEncoder(first.spec, first.freq, numeric, vocab,
                            {i: k + 1 for k, i in enumerate(ids)})


def merge_scalers(summaries: list[PartSummary], cfg: PipelineConfig) -> Any:
    """The panel's scaler: every shard's per-series statistics in one."""
    from deepcast.features.scalers import SeriesScaler

    merged: dict[str, Any] = {}
    for s in summaries:
        for key, value in s.scaler.items():
            merged[key] = [*merged.get(key, []), *value] if isinstance(value, list) else value
    if not merged:
        return SeriesScaler(cfg.features.scaler, cfg.features.target_transform)
    return SeriesScaler.from_dict(merged)


def aligned(part: Part, encoder: CovariateEncoder | None) -> Part:
    """The part with its covariates encoded by the panel's ``encoder`` (a new part: the
    old one's arrays are shared, its encoder's codes are not)."""
    prep = part.prep
    if prep is None or encoder is None or prep.encoder is None:
        return part
    pads = prep.scaled.lengths - prep.panel.lengths
    covariates = encoder.transform(prep.df).left_pad(prep.panel.offsets, pads)
    old = prep.covariates
    for k in ("past", "future", "static", "static_cat", "series"):
        if np.array_equal(getattr(covariates, k), getattr(old, k)):  # e.g. calendar only
            setattr(covariates, k, getattr(old, k))  # one copy for both parts
    prep = replace(prep, encoder=encoder, covariates=covariates)
    return replace(part, prep=prep, stream=replace(part.stream, covariates=covariates))


def epoch_windows(part: Part, seed: int, epoch: int, n: int) -> WindowBatch | None:
    """``n`` of the part's training windows for ``epoch`` (the in-memory path's sample for
    the part's shard index 0; each other shard draws with its own key)."""
    if part.stream is None or not n:
        return None
    return part.stream.epoch(_shard_seed(seed, part), epoch, n)


def _shard_seed(seed: int, part: Part) -> int:
    """The part's sampling seed: ``seed`` for shard 0 (the in-memory path's), apart for
    every other shard."""
    return seed + (part.index << 32)


def validation_windows(part: Part, seed: int, n: int) -> WindowBatch | None:
    """``n`` of the part's validation windows in panel order: all of them, or a seeded
    sample (keyed by the epoch :data:`VALIDATION`)."""
    stream = part.stream
    if stream is None or not n:
        return None
    if n >= stream.n_val:
        return stream.validation()
    starts = sample_starts(stream.val_starts, n, _shard_seed(seed, part), VALIDATION,
                           len(stream.values), stream.geometry)
    return stream.windows(np.sort(starts))


@dataclass(frozen=True)
class PartScore:
    """A shard's holdout scores: its per-series table, and for quantile forecasts the
    sums the weighted quantile loss is a ratio of."""

    per_series: pd.DataFrame
    wql_parts: tuple[np.ndarray, float] | None = None
    #: conformal calibration rows and their band scales (``Holdout.residual_rows``)
    residuals: tuple[np.ndarray, np.ndarray] | None = None
    #: the selection metric per series (rows) and holdout origin (``origin_scores``)
    by_origin: np.ndarray | None = None


def score_part(part: Part, bundle: bytes, metric: str = "mase", residuals: bool = False
               ) -> PartScore | None:
    """Forecast the part's holdout with the fitted model (``bundle``: the saved predictor,
    as :func:`bundle_bytes` packs it) and score it per series, and ``metric`` per series
    and origin; with ``residuals``, its conformal calibration rows too."""
    from deepcast.features.errors import RunFailed
    from deepcast.forecasting import metrics
    from deepcast.forecasting.evaluate import quantile_levels, score_test
    from deepcast.forecasting.keras_model import quantile_column
    from deepcast.pipelines.modelling import holdout_predictions
    from deepcast.pipelines.selection import origin_scores

    prep = part.prep
    if prep is None or prep.holdout is None:
        return None
    predictor = unpacked(bundle)
    holdout = prep.holdout
    # a neural model without bands reads its lookback before each origin: the last
    # lookback + holdout rows of each series give the same forecast as the whole history
    # (its own lookback: a champion's may be longer; a model that does not train may read
    # more: a statistical model fits on it)
    tail = max(prep.window.lookback, predictor.lookback) + holdout.size \
        if predictor.forecaster.trainable else None
    fc = holdout_predictions(predictor, prep, tail)
    if not np.isfinite(fc["yhat"].to_numpy(np.float64)).all():
        raise RunFailed(f"model {predictor.name!r} produced missing or non-finite forecasts "
                        f"in {part.label}",
                        hint="check the training loss curve; lower the learning rate")
    _, per_series = score_test(fc, holdout.test_df, holdout.scale, holdout.size)
    rows = holdout.residual_rows(fc, predictor.horizon) if residuals else None
    by_origin = origin_scores(fc, holdout, predictor.horizon, metric)
    levels = quantile_levels(fc)
    if not levels:
        return PartScore(per_series, None, rows, by_origin)
    y, _ = holdout.truth_and_forecast(fc)
    q = fc[[quantile_column(v) for v in levels]].to_numpy(np.float64).reshape(
        (*y.shape, len(levels)))
    return PartScore(per_series, metrics.wql_parts(y, q, levels), rows, by_origin)


def example(part: Part) -> pd.DataFrame:
    """A few of the part's series in the served model's input format (its signature)."""
    from deepcast.pipelines.artifacts import serving_example

    return serving_example(part.prep)


def bundle_bytes(predictor: Any) -> bytes:
    """The predictor's saved bundle (``Predictor.save``: .keras and JSON, no pickle) as
    one zip in memory: how the fitted model reaches workers on other machines."""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w") as z:
        root = predictor.save(Path(tmp) / "model")
        for path in sorted(root.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(root).as_posix())
    return buf.getvalue()


_LOADED: dict[str, Any] = {}  # bundle digest -> predictor, one per process
_LOADING = threading.Lock()


def unpacked(bundle: bytes) -> Any:
    """The predictor of a :func:`bundle_bytes` bundle, loaded once per process."""
    from deepcast.forecasting.predictor import Predictor

    key = hashlib.sha256(bundle).hexdigest()
    with _LOADING:
        if key not in _LOADED:
            _LOADED.clear()
            with tempfile.TemporaryDirectory() as tmp:
                with zipfile.ZipFile(io.BytesIO(bundle)) as z:
                    z.extractall(tmp)
                _LOADED[key] = Predictor.load(tmp)
        return _LOADED[key]


def digest(part: Part) -> str:
    """A digest of every array the part trains on (what a checkpoint must match)."""
    return part.stream.fingerprint if part.stream is not None else ""


def part_bytes(part: Part) -> int:
    """What a part holds in memory (Dask's ``sizeof``): so the scheduler keeps tasks
    where their part is, and spills parts, instead of taking them for free to move."""
    prep = part.prep
    if prep is None:
        return 1024
    arrays = [prep.panel.values, prep.scaled.values, prep.train_starts, prep.val_starts]
    if prep.covariates is not None:
        arrays += [prep.covariates.past, prep.covariates.future]
    kept = part.windows.df if part.windows is not None else None
    frames = int(sum(f.memory_usage(deep=False).sum() for f in (prep.df, prep.user_df, kept)
                     if f is not None))
    return frames + sum(int(a.nbytes) for a in arrays)


try:  # registered wherever this module is imported (the workers unpickle its functions)
    from dask.sizeof import sizeof as _sizeof

    _sizeof.register(Part)(part_bytes)
except ImportError:  # pragma: no cover (dask is a dependency)
    pass
