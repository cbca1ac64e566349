"""Model preparation shared by the train, backtest, tune and ensemble stages.

A run's frame is split, scaled and windowed once into a :class:`PreparedData`; every
model of the run is fit on it (:func:`fit_model`) and scored on its holdout through the
served predictor (:func:`evaluate`). The stages pass that one object (and plain specs:
:class:`TrainSettings`, conformal levels) instead of the frame and the whole config.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.covariates import CovariateEncoder, Covariates, CovariateSpec
from deepcast.features.errors import DataError, RunFailed
from deepcast.features.hierarchy import LEVEL
from deepcast.features.scalers import SeriesScaler
from deepcast.features.schema import DS, ID, ColumnSpec, Y, release_arrow_memory
from deepcast.features.windows import Panel, pad_panel, panel_from_frame, window_starts
from deepcast.forecasting import conformal
from deepcast.forecasting.base import (
    COUNT_DISTRIBUTIONS,
    EpochHook,
    InputSpec,
    TrainingData,
    TrainSettings,
    WindowSpec,
)
from deepcast.forecasting.crossval import SpanBacktest
from deepcast.forecasting.evaluate import (
    forecast_origins,
    holdout_rows,
    score_test,
    split_holdout,
)
from deepcast.forecasting.metrics import seasonal_scale
from deepcast.forecasting.models import build_forecaster, families
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.ingest import column_spec

Mapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]
"""Runs ``fn`` on every job and returns the results in job order, possibly in other
processes (the Dask fan-out of ``flows``); jobs and results are plain data."""


@dataclass
class ModelResult:
    """One trained and scored model."""

    name: str
    family: str
    metrics: dict[str, float]
    run_id: str = ""
    model_uri: str = ""
    epochs: int = 0
    fit_seconds: float = 0.0
    predictor: Predictor | None = field(default=None, repr=False)
    #: False when the fit used every epoch while its loss was still falling (None: the
    #: model does not train); ``convergence`` says why
    converged: bool | None = None
    convergence: str = ""
    #: what its scores or bands rest on that the reader should know (conformal levels
    #: left out for too few residuals)
    notes: tuple[str, ...] = ()
    #: the metric of each holdout forecast origin (window), over all series: its spread
    #: says whether a difference between models is noise
    window_scores: tuple[float, ...] = ()
    #: its forecasts on the training span's backtest windows (``evaluation.selection:
    #: backtest``; None: not backtested) and their scores, oldest window first
    backtest: SpanBacktest | None = field(default=None, repr=False)
    backtest_scores: tuple[float, ...] = ()
    #: under training.warm_start: "warm" or "cold" ('' otherwise, or for a model that does
    #: not train)
    start: str = ""

    @property
    def selection_scores(self) -> tuple[float, ...]:
        """The scores the model is chosen on: each backtest window, then each holdout
        origin."""
        return (*self.backtest_scores, *self.window_scores)

    def selection_score(self, metric: str) -> float:
        """The mean of :attr:`selection_scores` (the holdout ``metric`` when there are
        none)."""
        finite = [v for v in self.selection_scores if np.isfinite(v)]
        return float(np.mean(finite)) if finite else self.metrics.get(metric, float("nan"))


@dataclass(frozen=True)
class Holdout:
    """The last ``size`` points of every series, held out for scoring; split once."""

    size: int
    test_df: pd.DataFrame  # canonical rows of the holdout, in frame order
    scale: np.ndarray  # (n_series,) seasonal naive MAE of each training span (MASE scale)
    band_scale: np.ndarray  # (n_series, origins) conformal scale at each holdout origin

    def truth_and_forecast(self, fc: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(y, yhat), each (n_series, size): the holdout's values and a holdout forecast
        ``fc`` in the same row order (what :func:`holdout_predictions` returns)."""
        shape = (len(self.scale), self.size)
        return (self.test_df[Y].to_numpy(np.float64).reshape(shape),
                fc["yhat"].to_numpy(np.float64).reshape(shape))

    def residual_rows(self, fc: pd.DataFrame, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """The forecast ``fc``'s residuals as conformal calibration rows, one per origin
        (``horizon`` steps, NaN past the holdout), and each row's band scale."""
        resid = np.subtract(*self.truth_and_forecast(fc))
        n, origins = resid.shape[0], self.band_scale.shape[1]  # one scale per origin
        padded = np.full((n, origins * horizon), np.nan)
        padded[:, :self.size] = resid
        return padded.reshape(n * origins, horizon), self.band_scale.reshape(-1)


@dataclass(frozen=True)
class PreparedData:
    """One run's frame, split, scaled and windowed once: what fitting, evaluation,
    ensembles and plots take instead of the frame and the config.

    Invariants: ``df`` is the canonical long frame (sorted by unique_id, ds) and ``panel``
    holds its values in that order; ``scaler`` and ``encoder`` were fit on the training
    span only (all but the holdout); the window starts index ``scaled`` and their targets
    end before the holdout; ``holdout`` is None when nothing is held out (a backtest fit).
    """

    df: pd.DataFrame
    user_df: pd.DataFrame  # ``df`` in the YAML's column names (what the served model takes)
    panel: Panel  # as observed
    scaler: SeriesScaler
    scaled: Panel  # scaled, short series left-padded with NaN
    train_starts: np.ndarray  # window starts in ``scaled``
    val_starts: np.ndarray
    window: WindowSpec
    columns: ColumnSpec
    min_history: int | None  # 1 with data.short_series: pad (else the lookback)
    holdout: Holdout | None = None
    encoder: CovariateEncoder | None = None
    covariates: Covariates | None = None  # aligned with ``scaled``
    nonnegative: bool = False  # forecasts floored at 0 (data.nonnegative, resolved)

    @property
    def inputs(self) -> InputSpec:
        """The covariate inputs models of this data are built for."""
        return inputs_of(self.encoder)

    @property
    def training_data(self) -> TrainingData:
        """The scaled values and window starts a trainable family fits on."""
        return TrainingData(self.scaled.values, self.train_starts, self.val_starts,
                            self.covariates, self.scaled.offsets)

    def predictor(self, forecaster: Any) -> Predictor:
        """``forecaster`` with this data's scaler, encoder and columns: a served model."""
        # the data's shortest usable history, also for a local model's longer window
        predictor = Predictor(forecaster, self.scaler, self.columns, self.encoder,
                              self.min_history or self.window.lookback)
        predictor.nonnegative = self.nonnegative
        return predictor

    def require_holdout(self) -> Holdout:
        """The holdout (scoring needs one)."""
        if self.holdout is None:
            raise ValueError("this data was prepared without a holdout: nothing to score")
        return self.holdout


def min_history(cfg: PipelineConfig) -> int | None:
    """The shortest history a served model of ``cfg`` forecasts from: 1 point with
    ``data.short_series: pad`` (it pads), else None (its lookback)."""
    return 1 if cfg.data.short_series == "pad" else None


def inputs_of(enc: CovariateEncoder | None) -> InputSpec:
    """The covariate inputs of models fit on what ``enc`` encodes."""
    if enc is None:
        return InputSpec()
    s = enc.spec
    return InputSpec(n_past=len(s.past), n_future=s.n_future, n_static=len(s.static_numeric),
                     cardinalities=tuple(enc.cardinalities), embedding_dim=s.embedding_dim,
                     n_series=len(enc.ids) + 1 if s.id_embedding else 0,
                     id_embedding=s.id_embedding)


def window_spec(cfg: PipelineConfig) -> WindowSpec:
    """The window every model of ``cfg`` sees."""
    f, d = cfg.features, cfg.data
    return WindowSpec(f.lookback, f.horizon, d.season_length, tuple(d.seasonalities))


def training_settings(cfg: PipelineConfig) -> TrainSettings:
    """The fitting options of the YAML's ``training`` section."""
    # the loop's own settings only (not the split's, checkpoints' or warm start's)
    return TrainSettings(**cfg.training.model_dump(include={f.name for f in fields(TrainSettings)}))


def checkpoint_dir(cfg: PipelineConfig, label: str) -> Path | None:
    """Where a model's resumable checkpoint lives: ./mlruns/checkpoints/NAME/MODEL."""
    if not cfg.training.checkpoint:
        return None
    return Path.cwd() / "mlruns" / "checkpoints" / cfg.name / label


def covariate_spec(cfg: PipelineConfig, df: pd.DataFrame) -> CovariateSpec:
    """The YAML's covariates; a static column is categorical when declared so, or (by
    default) when its values are not numbers."""
    d, f = cfg.data, cfg.features
    categorical = d.categorical
    if categorical is None:
        categorical = [c for c in d.static if not pd.api.types.is_numeric_dtype(df[c])]
    level = (LEVEL,) if cfg.hierarchy is not None else ()  # a hierarchy's, categorical
    return CovariateSpec(static=(*d.static, *level), past=tuple(d.past), future=tuple(d.future),
                         categorical=(*categorical, *level), calendar=cfg.calendar,
                         id_embedding=f.id_embedding, embedding_dim=f.embedding_dim)


def user_frame(df: pd.DataFrame, cfg: PipelineConfig, columns: ColumnSpec | None = None
               ) -> pd.DataFrame:
    """Canonical frame back in the YAML's column names (what the served model takes), or
    in ``columns``' (a registered model's own: it may predate a rename in the YAML)."""
    d = cfg.data
    names = columns or column_spec(d)
    covariates = [c for c in (*d.static, LEVEL, *d.past, *d.future) if c in df.columns]
    return df[[ID, DS, Y, *covariates]].rename(
        columns={ID: names.id_col, DS: names.time_col, Y: names.target_col})


def prepare(df: pd.DataFrame, cfg: PipelineConfig, holdout: int | None = None
            ) -> PreparedData:
    """Split, scale and window ``df`` once: the scaler and covariate encoder are fit on the
    training span (all but the last ``holdout`` points, default ``evaluation.test_size``),
    short series padded (``data.short_series: pad``), the windows placed and the holdout
    rows and MASE scales kept for scoring."""
    panel = panel_from_frame(df)
    test_size = cfg.evaluation.test_size if holdout is None else holdout
    f, d = cfg.features, cfg.data
    scaler = SeriesScaler(f.scaler, f.target_transform).fit(panel, panel.lengths - test_size)
    pads = np.zeros(panel.n_series, dtype=np.int64)
    if d.short_series == "pad":
        pads[panel.lengths < cfg.lengths.with_holdout(test_size).full] = f.lookback - 1
    scaled = pad_panel(scaler.transform(panel), pads)
    encoder, covariates = _encode_covariates(df, cfg, test_size, panel.offsets, pads)
    train_end = scaled.ends - test_size
    val_cut = train_end - cfg.val_size
    train_starts = window_starts(scaled.offsets, f.lookback, f.horizon, stop=val_cut)
    val_starts = window_starts(scaled.offsets, f.lookback, f.horizon, stop=train_end,
                               min_target_end=val_cut)
    if len(train_starts) == 0:
        raise _no_windows(cfg, test_size, panel)
    split = None
    if test_size:
        cut = panel.lengths - test_size
        split = Holdout(test_size, _last_rows(df, panel, test_size),
                        seasonal_scale(panel, cut, d.season_length),
                        conformal.holdout_band_scales(panel, cut, test_size, d.season_length,
                                                      f.horizon))
    release_arrow_memory()
    return PreparedData(df, user_frame(df, cfg), panel, scaler, scaled, train_starts,
                        val_starts, window_spec(cfg), column_spec(d),
                        min_history(cfg), split, encoder, covariates,
                        nonnegative(d.nonnegative, panel, test_size))


def nonnegative(setting: bool | str, panel: Panel, test_size: int) -> bool:
    """``data.nonnegative`` resolved: ``auto`` is on when no observed value of the training
    span (all but the last ``test_size`` points of each series) is below zero."""
    if setting != "auto":
        return bool(setting)
    keep = np.arange(len(panel.values)) < np.repeat(panel.ends - test_size, panel.lengths)
    values = panel.values[keep]
    return bool(len(values)) and bool(np.nanmin(values, initial=np.inf) >= 0)


def _encode_covariates(df: pd.DataFrame, cfg: PipelineConfig, test_size: int,
                       offsets: np.ndarray, pads: np.ndarray
                       ) -> tuple[CovariateEncoder | None, Covariates | None]:
    """The covariate encoder fit on the training span and the encoded, padded covariates;
    (None, None) for a pipeline without covariates."""
    spec = covariate_spec(cfg, df)
    if spec.empty:
        return None, None
    encoder = CovariateEncoder(spec, cfg.data.freq).fit(split_holdout(df, test_size)[0])
    return encoder, encoder.transform(df).left_pad(offsets, pads)


def _last_rows(df: pd.DataFrame, panel: Panel, size: int) -> pd.DataFrame:
    """The last ``size`` rows of every series (the holdout), found from the panel's offsets,
    which are row positions in ``df``, instead of grouping the frame again."""
    if (panel.lengths < size).any():
        return holdout_rows(df, size)
    rows = np.repeat(panel.ends - size, size) + np.tile(np.arange(size), panel.n_series)
    return df.iloc[rows].reset_index(drop=True)


def _no_windows(cfg: PipelineConfig, test_size: int, panel: Panel) -> DataError:
    return DataError(
        f"no training windows: every series needs at least lookback + horizon + val_size "
        f"+ test_size = {cfg.lengths.with_holdout(test_size).full} points, or "
        f"horizon + val_size + test_size + 1 = {cfg.min_padded_length} with "
        f"data.short_series: pad (longest has {int(panel.lengths.max(initial=0))})",
        hint="lower features.lookback / training.val_size / evaluation.test_size, "
        "use data.short_series: pad, or supply longer series",
    )


def fit_model(entry: Any, prep: PreparedData, settings: TrainSettings,
              on_epoch: EpochHook | None = None, checkpoint: Path | None = None,
              start: Callable[[Any], Any] | None = None
              ) -> tuple[Predictor, dict[str, list[float]], float]:
    """Build and fit one model entry of the YAML on ``prep``; return its predictor,
    history and fit time (``checkpoint``: folder of its resumable checkpoint; ``start``:
    the built forecaster -> its ``forecasting.warm.WarmStart`` or None, a cold start)."""
    trainable = families()[entry.type].trainable
    check_counts(getattr(entry, "distribution", None), prep)
    forecaster = build_forecaster(entry.type, entry.label, prep.window, entry.options(),
                                  prep.inputs if trainable else None)
    forecaster.use_history(int(prep.panel.lengths.max(initial=0)))
    if start is not None and forecaster.trainable:
        forecaster.warm_start = start(forecaster)
    history: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    if forecaster.trainable:
        history = forecaster.fit(prep.training_data, settings, on_epoch, checkpoint)
    return prep.predictor(forecaster), history, time.perf_counter() - t0


def check_counts(distribution: str | None, prep: PreparedData) -> None:
    """A count head needs values that are counts: none below zero (named by series)."""
    if distribution not in COUNT_DISTRIBUTIONS:
        return
    panel = prep.panel
    low = np.minimum.reduceat(panel.values, panel.starts) < 0 if panel.n_series else []
    if np.any(low):
        names = [str(i) for i in panel.ids[np.asarray(low)]]
        raise DataError(f"distribution: {distribution} models counts, but {len(names)} "
                        f"series have values below zero: {', '.join(names[:5])}"
                        f"{' ...' if len(names) > 5 else ''}",
                        hint="use distribution: normal or studentt for data that can be "
                        "negative, or drop these series")


def holdout_predictions(predictor: Predictor, prep: PreparedData, tail: int | None = None
                        ) -> pd.DataFrame:
    """The holdout forecast (``unique_id, ds, yhat``) through the predictor's ``predict``,
    on the rows located once by ``prep`` (what ``holdout_forecast`` finds by grouping);
    from the last ``tail`` rows of each series only when given (enough for a model that
    reads a fixed window and no bands: its forecast is the same, its memory far less)."""
    holdout, user = prep.require_holdout(), prep.user_df
    rows, offsets = (np.arange(len(user)), prep.panel.offsets) if tail is None else \
        prep.panel.tail_positions(tail)
    lengths = np.diff(offsets)
    pos_from_end = np.repeat(offsets[1:] - 1, lengths) - np.arange(int(lengths.sum()))
    if tail is not None:
        user = user.iloc[rows].reset_index(drop=True)
    return forecast_origins(predictor.predict, user, holdout.size, pos_from_end,
                            holdout.test_df[[ID, DS]], prep.columns.target_col)


def evaluate(predictor: Predictor, prep: PreparedData, levels: Sequence[float] = (),
             fc: pd.DataFrame | None = None, backtest: SpanBacktest | None = None
             ) -> tuple[dict[str, float], pd.DataFrame]:
    """Holdout metrics and per-series table through the predictor's public ``predict``
    (or of its holdout forecast ``fc`` when already made); with conformal ``levels``, the
    predictor is calibrated on the holdout residuals too, and on its ``backtest`` windows'
    residuals when given (cross-validation conformal)."""
    holdout = prep.require_holdout()
    if fc is None:
        fc = holdout_predictions(predictor, prep)
    if fc["yhat"].isna().any() or not np.isfinite(fc["yhat"].to_numpy()).all():
        raise RunFailed(f"model {predictor.name!r} produced missing or non-finite forecasts",
                        hint="check the training loss curve; lower the learning rate")
    if levels:
        calibration = calibrate_on_holdout(fc, holdout, levels, predictor.horizon, backtest)
        predictor.conformal = calibration.table or None
        where = "the holdout" if backtest is None else \
            f"{backtest.n_windows} backtest windows and the holdout"
        predictor.conformal_notes = calibration.notes(f" (calibrated on {where})")
    return score_test(fc, holdout.test_df, holdout.scale, holdout.size)


def calibrate_on_holdout(fc: pd.DataFrame, holdout: Holdout, levels: Sequence[float],
                         horizon: int, backtest: SpanBacktest | None = None
                         ) -> conformal.Calibration:
    """Conformal table from the holdout residuals (out of sample for a model fit on the
    training span) and those of its ``backtest`` windows when given. Each origin's
    ``horizon`` steps are one calibration row; steps the holdout does not reach reuse the
    widest calibrated step."""
    rows, scale = holdout.residual_rows(fc, horizon)
    if backtest is not None:
        more, more_scale = backtest.residual_rows()
        rows, scale = np.concatenate([rows, more]), np.concatenate([scale, more_scale])
    return conformal.calibrate(rows, scale, levels).filled()
