"""The sections that say how a run goes: `training:`, `evaluation:` (with its
`backtest:`), `promotion:`, `drift:` and `execution:`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from deepcast.forecasting.runtime import DEVICES
from deepcast.pipelines.config.base import _Strict


class TrainingConfig(_Strict):
    """How Keras models are fit (baselines ignore it)."""

    max_epochs: int = Field(30, ge=1, description="Upper bound on epochs.")
    patience: int = Field(5, ge=0, description="Early stopping patience on validation loss "
                          "(best weights restored).")
    batch_size: int = Field(256, ge=1, description="Windows per batch (per device).")
    seed: int = Field(0, ge=0, description="Seed for weights, shuffling and dropout.")
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = Field(
        "adam", description="Optimiser (sgd uses Nesterov momentum 0.9).")
    learning_rate: float = Field(1e-3, gt=0, description="Initial learning rate.")
    schedule: Literal["none", "plateau", "cosine"] = Field(
        "none", description="Learning-rate schedule: 'plateau' halves it when the "
        "validation loss stalls for patience/2 epochs; 'cosine' decays it to 1 % over "
        "max_epochs.")
    clipnorm: float | None = Field(None, gt=0, description="Clip each gradient to this norm.")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay (adamw "
                                "defaults to 1e-4 when this is 0).")
    l2: float = Field(0.0, ge=0, description="L2 penalty on every kernel (not biases).")
    loss: Literal["mse", "mae", "huber"] = Field(
        "mae", description="Training loss in scaled space (quantile models use pinball).")
    val_size: int | None = Field(
        None, ge=1, description="Last points of the training span used for early stopping "
        "(default: horizon).",
    )
    device: Literal[DEVICES] = Field(  # type: ignore[valid-type]
        "auto", description="auto: TPU if present, else all GPUs (MirroredStrategy when "
        "several), else CPU; or force cpu / gpu / tpu (an absent device is an error).")
    mixed_precision: Literal["auto"] | bool = Field(
        "auto", description="Mixed precision: 'auto' is on for GPU (float16) and TPU "
        "(bfloat16), off on CPU. Saved models are float32 either way.")
    jit_compile: Literal["auto"] | bool = Field(
        "auto", description="XLA compilation: 'auto' is on for one GPU or TPU, off under a "
        "multi-device strategy, and on a CPU on only for a fit of at least 2,000 planned "
        "steps (max_epochs x steps per epoch; XLA's compile costs more than it saves on "
        "shorter fits); `DEEPCAST_JIT_COMPILE=off` (or `on`) sets what 'auto' means on a "
        "machine.")
    steps_per_execution: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto", description="Training steps run per call into the compiled graph: fewer "
        "Python round trips per batch (measured on 2 CPU cores: +20-35 % windows/s for LSTM "
        "and the transformer). The largest divisor of the steps per epoch up to this "
        "number ('auto': 32), so every epoch keeps its exact batches; 1 turns it off.")
    windows_per_epoch: int | None = Field(
        None, ge=1, description="Training windows per epoch: each epoch fits on a fresh "
        "sample of this many, drawn uniformly without replacement from all series' windows "
        "(seeded by `seed` and the epoch), so an epoch of a large panel takes that many "
        "windows' steps whatever its size (only the per-epoch shuffle of the window starts "
        "grows with it) and early stopping checks the validation loss that often. With "
        "execution.runner: dask and a Parquet dataset or a query, `train` then trains from "
        "the shards in the workers (no process holds the panel). null: every window, every "
        "epoch.")
    min_steps_per_epoch: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        "auto", description="Fewest batches an epoch takes: a small panel's epoch repeats "
        "its windows (each pass in its own seeded order) until it has this many, so a "
        "small data set gets a real training budget (max_epochs x this at least, as "
        "neuralforecast counts steps, not epochs) and early stopping checks the validation "
        "loss every that many steps. A panel with more windows is unchanged, and so is an "
        "epoch of `windows_per_epoch`, and so is a warm-started fit (the floor is a budget "
        "for a fit from scratch); 0: every epoch is one pass over the windows. 'auto': 50, "
        "or what `DEEPCAST_MIN_STEPS_PER_EPOCH` says on a machine (the test suite's tiny "
        "fits use 0).")
    checkpoint: bool = Field(
        True, description="Checkpoint training so an interrupted train resumes where it "
        "stopped when rerun with the same config and data.")
    checkpoint_every: float = Field(
        10.0, ge=0, description="Seconds of training between checkpoints: one is written "
        "at the end of the first epoch that ends this long after the last (or after the "
        "fit's start), so a kill loses at most about this much training and a fit shorter "
        "than it writes none; 0: after every epoch.")
    warm_start: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] | None = Field(
        None, description="Start each neural model from the weights of the same model in "
        "the run that trained this registry alias or version (`champion`, `challenger`, "
        "`12`) when its family, options, windows, covariates and scaler are unchanged, and "
        "fit it for at most `warm_start_epochs`; any other model starts cold with a "
        "one-line note saying why. New series extend an ID embedding (new rows start at "
        "the mean); new categories of a categorical static start cold. Each selection "
        "backtest fit starts from the source run's own selection fit (the champion has "
        "seen those windows); a source trained on data after tonight's span starts "
        "nothing (cold, with the reason). The gate is unchanged.")
    warm_start_epochs: int = Field(
        5, ge=1, description="Most epochs of a warm-started fit, each one pass over "
        "tonight's windows (min_steps_per_epoch does not apply; early stopping does).")
    warm_start_selection_epochs: int = Field(
        0, ge=0, description="Most epochs of a warm night's selection backtest fit, which "
        "starts from the source run's selection fit. 0: that fit is used as it is, "
        "untrained: it saw nothing after tonight's first cut-off, so its forecasts of "
        "tonight's windows stay out of sample (a few nights staler than a fresh fit, "
        "never leaked), and a warm night's selection costs a prediction, not a fit; at "
        "most cold_every - 1 nights in a row (its saved record counts them) and while it "
        "is at most one backtest span old, then it trains warm_start_epochs; with "
        "cold_every: null it always does.")
    cold_every: int | None = Field(
        7, ge=1, description="With warm_start: every Nth night trains cold (after N-1 warm "
        "nights in a row), so drift cannot accumulate in the weights; null: never.")

class BacktestConfig(_Strict):
    """Rolling-origin evaluation (``deepcast backtest``)."""

    n_windows: int | None = Field(
        None, ge=1, le=1000, description="Cut-offs (forecast origins). Default: enough "
        "windows for two seasons or 100 points per series, whichever is fewer, and at least "
        "3 (at most 20).")
    step: int | None = Field(None, ge=1, description="Steps between cut-offs (default: "
                             "horizon). The last window ends at each series' last point.")
    refit: bool | int = Field(
        False, description="false: fit once before the first cut-off and predict every "
        "window in one batched call; true: refit at every cut-off; an integer k: refit "
        "every k windows.")
    window: Literal["expanding", "sliding"] = Field(
        "expanding", description="expanding: a fit sees all history before its cut-off; "
        "sliding: only the last `train_size` points before it.")
    train_size: int | None = Field(None, ge=1, description="Points before each cut-off a "
                                   "fit sees with window: sliding.")
    calibration_windows: int | None = Field(
        None, ge=1, description="Conformal coverage in `deepcast backtest`: each window's "
        "bands are calibrated on the residuals of at most this many windows before its "
        "cut-off. Default: as many as `train` calibrates on (its selection windows plus "
        "the holdout's origins, counted before --n-windows/--step), so the coverage "
        "measured is that of the bands `train` serves; 1000: every earlier window.")

    @model_validator(mode="after")
    def _sliding(self) -> BacktestConfig:
        if self.window == "sliding" and self.train_size is None:
            raise ValueError("window: sliding needs train_size (points before each cut-off)")
        return self

    @field_validator("refit")
    @classmethod
    def _refit(cls, v: bool | int) -> bool | int:
        if not isinstance(v, bool) and v < 1:
            raise ValueError("refit must be true, false or an integer >= 1")
        return v


class EvaluationConfig(_Strict):
    """Holdout scoring, backtests and calibrated intervals."""

    test_size: int = Field(ge=1, description="Last points of every series held out for scoring.")
    metric: Literal["mae", "rmse", "smape", "mase"] = Field(
        "mase", description="Metric used to choose the best model and to promote."
    )
    backtest: BacktestConfig = Field(BacktestConfig(),
                                     description="Rolling-origin backtest settings.")
    selection: Literal["backtest", "holdout"] = Field(
        "backtest", description="What chooses the best model and calibrates the conformal "
        "bands. backtest: the rolling-origin backtest inside the training span "
        "(evaluation.backtest windows; one more fit per trained model, refit: false) plus "
        "the holdout's origins, scored window by window (select_<metric> is their mean); "
        "holdout: the holdout only (no extra fits). The promotion gate always scores the "
        "holdout's cut-offs, the only windows out of sample for the champion too.")
    prefer_ensemble: float = Field(
        1.0, ge=0, description="Serve an ensemble rather than the model with the lowest "
        "select_<metric> when its score is within this many paired standard errors of that "
        "model's (the spread of their per-window differences, over the same two or more "
        "windows): a difference that size is noise, and an ensemble varies less from window "
        "to window. The train output says when it happens. 0: always the lowest score.")
    plots: bool = Field(
        True, description="Log plots to MLflow: each model's series, loss and error by "
        "horizon, and the parent run's skill chart (about 0.5-1 s per model; off for many "
        "models or a nightly job nobody looks at).")
    conformal: list[float] = Field(
        [], description="Conformal interval levels in percent, e.g. [80, 95]: calibrated on "
        "each model's out-of-sample residuals (every backtest window and the holdout with "
        "selection: backtest, else the holdout); the forecast gains yhat_lo_80 / "
        "yhat_hi_80 ... A level with too few residuals per horizon step (4 for 80, 19 for "
        "95) is left out, and the run, forecast and report say so.")

    @field_validator("conformal")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0 < x < 100]
        if bad:
            raise ValueError(f"conformal levels are percentages strictly between 0 and 100, "
                             f"got {bad}")
        return sorted(set(v))


class PromotionConfig(_Strict):
    """The gate between challenger and champion."""

    margin: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Relative improvement the challenger needs over the champion "
        "(0.02 = 2 % lower metric).",
    )
    level: str = Field(
        "all", min_length=1,
        description="With a hierarchy, the level whose gate score decides: all (every "
        "series of every level), bottom, or a level's name (total, or its columns joined "
        "by /, e.g. state). Every level's scores are recorded either way.")


class DriftConfig(_Strict):
    """Drift check of `deepcast retrain`: new data against the champion's reference
    profile (saved with every model at train time)."""

    enabled: bool = Field(True, description="Check drift before retraining (a first run, "
                          "or a champion without a profile, skips it with a note).")
    on_breach: Literal["warn", "block"] = Field(
        "warn", description="warn: report and retrain anyway; block: a global breach stops "
        "the retrain before training (champion and forecast file untouched, exit 3).")
    window: int | None = Field(None, ge=1, description="Last points of each series the "
                               "level, scale and missing rate describe (default: lookback).")
    level_shift: float = Field(3.0, gt=0, description="Breach when a level moves by more "
                               "than this many reference scales (std of the window).")
    scale_ratio: float = Field(2.0, gt=1, description="Breach when the scale grows or "
                               "shrinks by more than this factor.")
    missing_rate: float = Field(0.1, ge=0, le=1, description="Breach when the share of "
                                "missing values in the window rises by more than this.")
    new_series: float = Field(0.2, ge=0, le=1, description="Breach when more series than "
                              "this share of the reference's are new.")
    vanished_series: float = Field(0.2, ge=0, le=1, description="Breach when more than this "
                                   "share of the reference's series are gone.")
    series_share: float = Field(0.1, ge=0, le=1, description="Global breach when more than "
                                "this share of the common series breach on their own.")

DASK_ADDRESS_ENV = "DEEPCAST_DASK_ADDRESS"


class ExecutionConfig(_Strict):
    """Where the fits of a run happen: one after the other in this process, or in
    parallel on Dask (prefect-dask's DaskTaskRunner; one process per worker)."""

    runner: Literal["serial", "dask"] = Field(
        "serial", description="serial: every fit in this process; dask: the models of a "
        "`train` and the fits of a `backtest` (every model x refit cut-off) run as Prefect "
        "tasks in Dask worker processes, each logging to MLflow itself; a forecast into a "
        "folder, and `validate` of a Parquet source or a query, run one task per shard "
        "(and `train` too, with training.windows_per_epoch). Same metrics and forecasts as "
        "serial for the same seed.")
    workers: int = Field(2, ge=1, le=1024, description="Worker processes of the local "
                         "Dask cluster started for the run (when no address is given).")
    threads_per_worker: int = Field(
        1, ge=1, le=64, description="Fits a local worker runs at once. Keep 1: Keras models "
        "trained in threads of one process share seed state, so results stop being "
        "reproducible.")
    address: str | None = Field(
        None, description="Scheduler of an existing Dask cluster (tcp://HOST:8786) instead "
        f"of a local one; default: the {DASK_ADDRESS_ENV} environment variable.")
    memory_limit: str | None = Field(
        None, pattern=r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]|[bB])\s*$", description="Memory "
        "of each worker of the local Dask cluster, e.g. `2GiB` (Dask spills to disk near it "
        "and restarts a worker that exceeds it); default: Dask's, the machine's memory "
        "shared by the workers.")
    shard_rows: int = Field(
        1_000_000, ge=1, description="Rows per shard of a forecast into a folder (`--output "
        "NAME` without an extension): each series whole in one shard, one Parquet file per "
        "shard, each shard read, validated and forecast by one worker. Smaller shards: less "
        "memory per worker, more files.")

    @property
    def scheduler_address(self) -> str | None:
        """``address``, else ``DEEPCAST_DASK_ADDRESS`` from the environment (None: local)."""
        import os

        return self.address or os.environ.get(DASK_ADDRESS_ENV) or None

