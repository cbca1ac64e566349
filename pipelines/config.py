"""The pipeline YAML schema: one pydantic model, strict, with errors that name the key.

A pipeline file is loaded with ``yaml.safe_load`` only; unknown keys are errors; relative
paths are resolved against the YAML file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from deepcast.features.covariates import CALENDAR, default_calendar
from deepcast.features.errors import ConfigError
from deepcast.forecasting.models import families
from deepcast.forecasting.runtime import DEVICES

METRICS = ("mae", "rmse", "smape", "mase")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlSource(_Strict):
    """A query whose rows are the long table (read through SQLAlchemy)."""

    query: str = Field(min_length=1, description="SELECT returning the id, time, target "
                       "and covariate columns.")
    url_env: str = Field("DEEPCAST_DB_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                         description="Environment variable holding the database URL (never "
                         "put the URL in the YAML).")


class DataConfig(_Strict):
    """Where the long table is and how its columns are named."""

    path: Path | None = Field(None, description="CSV or Parquet file (relative to the YAML "
                              "file); or give `sql`.")
    sql: SqlSource | None = Field(None, description="Read the long table with an SQL query "
                                  "instead of a file: {query: ..., url_env: DEEPCAST_DB_URL}.")
    id_col: str = Field("unique_id", description="Column holding the series identifier.")
    time_col: str = Field("ds", description="Column holding the timestamp or integer step.")
    target_col: str = Field("y", description="Column holding the value to forecast.")
    freq: str | int = Field(
        description="pandas offset alias (e.g. '30min', 'h', 'D', 'MS') for datetime `ds`, "
        "or a positive integer step for integer `ds`."
    )
    season_length: int = Field(
        1, ge=1, description="Seasonal period in steps (MASE, seasonal naive)."
    )
    short_series: Literal["pad", "drop", "error"] = Field(
        "pad",
        description="Series shorter than lookback + horizon + val_size + test_size: 'pad' "
        "trains and forecasts them from left-padded, masked windows (series shorter than "
        "horizon + val_size + test_size + 1 are still dropped and reported); 'drop' them "
        "(listed in the validation report); or fail validation with 'error'.",
    )
    static: list[str] = Field(
        [], description="Static covariates: columns constant within each series (e.g. "
        "store type, region); categorical ones get learned embeddings.")
    past: list[str] = Field(
        [], description="Past covariates: observed only up to the forecast origin (e.g. "
        "measured temperature); the model never sees their values over the horizon.")
    future: list[str] = Field(
        [], description="Future covariates: known over the horizon (e.g. planned prices, "
        "holidays); `deepcast forecast` needs them for the forecast dates.")
    categorical: list[str] | None = Field(
        None, description="Which static columns are categorical (default: the non-numeric "
        "ones).")
    bad_rows: Literal["error", "quarantine"] = Field(
        "error",
        description="Rows that cannot be used: an empty unique_id or ds, a ds that does not "
        "parse, a y that is not a finite number, a repeated (unique_id, ds). 'error' fails "
        "validation; 'quarantine' moves them to quarantine.csv next to the validation report "
        "(with a `reason` column), counts them in the report and the MLflow run, and goes "
        "on (a row with a bad y keeps its place with y missing, so `missing_y` applies).",
    )
    data_docs: Literal["on_failure", "always"] = Field(
        "on_failure",
        description="When to build Great Expectations Data Docs (HTML) next to "
        "validation.json: 'on_failure' (the default: a passing nightly run only writes the "
        "JSON, 1-4 s saved per run) or 'always'. `deepcast validate` always builds them.",
    )
    missing_y: Literal["error", "interpolate"] = Field(
        "error",
        description="Missing target values: 'error' fails validation; 'interpolate' fills them "
        "linearly within each series (edges: nearest value) and counts them in the report.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.path is None) == (self.sql is None):
            raise ValueError("give exactly one data source: `path` (a CSV/Parquet file) or "
                             "`sql` (a query)")
        return self

    @property
    def source(self) -> str:
        """The data source for messages and run tags (never the database URL)."""
        return str(self.path) if self.path is not None else f"sql: {self.sql.query[:200]}"

    @field_validator("freq")
    @classmethod
    def _check_freq(cls, v: str | int) -> str | int:
        if isinstance(v, bool):
            raise ValueError("freq must be a pandas offset alias or a positive integer")
        if isinstance(v, int):
            if v < 1:
                raise ValueError(f"integer freq must be >= 1, got {v}")
            return v
        if v.strip().isdigit():
            return int(v)
        import pandas as pd

        try:
            pd.tseries.frequencies.to_offset(v)
        except ValueError:
            raise ValueError(
                f"'{v}' is not a pandas offset alias (examples: '30min', 'h', 'D', 'W', 'MS')"
            ) from None
        return v


class FeaturesConfig(_Strict):
    """Window geometry and scaling."""

    lookback: int = Field(ge=1, description="Input window length (steps of history per forecast).")
    horizon: int = Field(ge=1, description="Steps forecast in one shot (direct multi-step).")
    scaler: Literal["standard", "none"] = Field(
        "standard", description="Per-series scaling fit on the training span only."
    )
    calendar: Literal["auto", "none"] | list[Literal[tuple(CALENDAR)]] = Field(  # type: ignore[valid-type]
        "auto", description="Calendar features of datetime `ds` used as future covariates "
        "(sin/cos of the position in the cycle): 'auto' picks them from freq (hourly: hour, "
        f"dayofweek; daily: dayofweek, dayofyear; monthly: month ...), 'none', or a list of "
        f"{', '.join(CALENDAR)}.")
    id_embedding: int = Field(
        0, ge=0, le=1024, description="Width of a learned series-ID embedding (0: none). "
        "An unseen series gets the mean embedding.")
    embedding_dim: int = Field(
        4, ge=1, le=1024, description="Width of each categorical static's embedding. An "
        "unseen category gets the mean embedding.")


class _ModelBase(_Strict):
    name: str | None = Field(None, description="Name in runs and the registry (default: type).")

    @property
    def label(self) -> str:
        return self.name or self.type  # type: ignore[attr-defined]

    def options(self) -> dict[str, Any]:
        """The family options of this entry (what the forecaster is built with)."""
        return self.model_dump(exclude={"type", "name"})


def _entry_models() -> dict[str, type[_ModelBase]]:
    """One strict YAML entry model per registered family: ``type`` + ``name`` + the family's
    own options (declared next to the family, so a new family needs no change here)."""
    out: dict[str, type[_ModelBase]] = {}
    for family, cls in sorted(families().items()):
        if not getattr(cls, "yaml_entry", True):
            continue
        entry = create_model(
            f"{cls.__name__}Entry",
            __base__=(_ModelBase, cls.Options),
            __doc__=(cls.__doc__ or "").strip(),
            type=(Literal[family], Field(description="Model family.")),  # type: ignore[valid-type]
        )
        out[family] = entry
    return out


ENTRY_MODELS = _entry_models()
MODEL_TYPES = tuple(ENTRY_MODELS)
ModelConfig = Annotated[Union[tuple(ENTRY_MODELS.values())],  # noqa: UP007
                        Field(discriminator="type")]


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
        "auto", description="XLA compilation: 'auto' is on (one device), off under a "
        "multi-device strategy.")
    steps_per_execution: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto", description="Training steps run per call into the compiled graph: fewer "
        "Python round trips per batch (measured on 2 CPU cores: +20-35 % windows/s for LSTM "
        "and the transformer). The largest divisor of the steps per epoch up to this "
        "number ('auto': 32), so every epoch keeps its exact batches; 1 turns it off.")
    checkpoint: bool = Field(
        True, description="Checkpoint every epoch so an interrupted train resumes where it "
        "stopped when rerun with the same config and data.")


class BacktestConfig(_Strict):
    """Rolling-origin evaluation (``deepcast backtest``)."""

    n_windows: int = Field(3, ge=1, le=1000, description="Cut-offs (forecast origins).")
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
    conformal: list[float] = Field(
        [], description="Conformal interval levels in percent, e.g. [80, 95]: calibrated on "
        "each model's out-of-sample holdout residuals; the forecast gains yhat_lo_80 / "
        "yhat_hi_80 ...")

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


class EnsembleConfig(_Strict):
    """An ensemble: a model like the others (scored, logged, registrable, servable)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="Name in runs and the registry.")
    method: Literal["mean", "median", "weighted", "stacking", "bagging"] = Field(
        description="mean / median of the members; weighted: weights 1/MASE from a backtest "
        "of the members on the training span; stacking: an affine combination per horizon "
        "step fit on those out-of-sample backtest forecasts; bagging: `model` trained with "
        "`n_members` seeds, averaged.")
    members: list[str] = Field([], description="Names of `models:` entries to combine "
                               "(all methods but bagging; at least two).")
    model: ModelConfig | None = Field(None, description="The model entry to bag (bagging).")
    n_members: int = Field(5, ge=2, le=100, description="Seeds to bag (bagging).")

    @model_validator(mode="after")
    def _shape(self) -> EnsembleConfig:
        if self.method == "bagging":
            if self.model is None:
                raise ValueError("bagging needs `model:` (a models entry to train with "
                                 "several seeds)")
        elif len(set(self.members)) < 2:
            raise ValueError(f"{self.method} needs at least two distinct `members:`")
        return self


class SearchSpec(_Strict):
    """One option's search range: exactly one of ``choice``, ``int`` or ``float``."""

    choice: list[Any] | None = Field(None, description="Values to choose from.")
    int_range: list[int] | None = Field(None, alias="int", min_length=2, max_length=2,
                                        description="[low, high], inclusive.")
    float_range: list[float] | None = Field(None, alias="float", min_length=2, max_length=2,
                                            description="[low, high].")
    log: bool = Field(False, description="Sample on a log scale (ranges only).")
    step: float | None = Field(None, gt=0, description="Grid step of a range.")

    @model_validator(mode="after")
    def _one_kind(self) -> SearchSpec:
        given = [k for k in ("choice", "int_range", "float_range") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of choice: [...], int: [low, high] or "
                             "float: [low, high]")
        if self.range is not None:
            lo, hi = self.range
            if not lo < hi:
                raise ValueError(f"range [{lo}, {hi}] is empty: low must be below high")
            if self.log and lo <= 0:
                raise ValueError("a log-scaled range must be positive")
        return self

    @property
    def kind(self) -> str:
        return "choice" if self.choice else ("int" if self.int_range else "float")

    @property
    def range(self) -> list[float] | None:
        return self.int_range or self.float_range


class TuneConfig(_Strict):
    """Hyperparameter search for one model (``deepcast tune``)."""

    model: str = Field(description="Name of the `models:` entry to tune.")
    sampler: Literal["tpe", "random", "grid"] = Field(
        "tpe", description="tpe: Bayesian (Optuna TPE); random; grid (every combination).")
    trials: int = Field(20, ge=1, le=10000, description="Trials (CLI --trials overrides).")
    prune: bool = Field(True, description="Stop trials whose validation loss is worse than "
                        "the median of earlier trials at the same epoch.")
    prune_after: int = Field(3, ge=0, description="Trials that always run to the end before "
                             "pruning starts.")
    space: dict[str, SearchSpec] = Field(
        min_length=1, description="Option -> range: the model's options (units, dropout, "
        "...) or training.<key> (training.learning_rate, ...).")


DASK_ADDRESS_ENV = "DEEPCAST_DASK_ADDRESS"


class ExecutionConfig(_Strict):
    """Where the fits of a run happen: one after the other in this process, or in
    parallel on Dask (prefect-dask's DaskTaskRunner; one process per worker)."""

    runner: Literal["serial", "dask"] = Field(
        "serial", description="serial: every fit in this process; dask: the models of a "
        "`train` and the fits of a `backtest` (every model x refit cut-off) run as Prefect "
        "tasks in Dask worker processes, each logging to MLflow itself. Same metrics as "
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

    @property
    def scheduler_address(self) -> str | None:
        """``address``, else ``DEEPCAST_DASK_ADDRESS`` from the environment (None: local)."""
        import os

        return self.address or os.environ.get(DASK_ADDRESS_ENV) or None


class PipelineConfig(_Strict):
    """One use case: data, features, models, training, evaluation."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="MLflow experiment and registered model name.",
    )
    data: DataConfig
    features: FeaturesConfig
    models: list[ModelConfig] = Field(min_length=1)
    ensemble: list[EnsembleConfig] = Field(
        [], description="Ensembles of the models (scored and promoted like models).")
    tune: TuneConfig | None = Field(None, description="Hyperparameter search (deepcast tune).")
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig
    promotion: PromotionConfig = PromotionConfig()
    drift: DriftConfig = Field(DriftConfig(), description="Drift check before a retrain.")
    execution: ExecutionConfig = Field(ExecutionConfig(), description="Serial or Dask "
                                       "fan-out of the fits.")

    @model_validator(mode="after")
    def _check_consistency(self) -> PipelineConfig:
        labels = [m.label for m in self.models] + [e.name for e in self.ensemble]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        names = [m.label for m in self.models]
        for e in self.ensemble:
            unknown = sorted(set(e.members) - set(names))
            if unknown:
                raise ValueError(f"ensemble {e.name!r}: unknown member(s) {unknown}; members "
                                 f"name models: entries ({', '.join(names)})")
        if dupes:
            raise ValueError(
                f"models: duplicate model name(s) {dupes}; give each entry a distinct `name:`"
            )
        if self.tune is not None:
            self._check_tune(names)
        d = self.data
        declared = [*d.static, *d.past, *d.future]
        reserved = {d.id_col, d.time_col, d.target_col}
        clash = sorted({c for c in declared if declared.count(c) > 1 or c in reserved})
        if clash:
            raise ValueError(
                f"data: covariate column(s) {clash} are declared twice or are the id/time/"
                "target column; list each covariate once, under static, past or future")
        if d.categorical is not None and not set(d.categorical) <= set(d.static):
            extra = sorted(set(d.categorical) - set(d.static))
            raise ValueError(f"data.categorical: {extra} are not static covariates; list "
                             "them under data.static too")
        if isinstance(self.features.calendar, list) and isinstance(d.freq, int):
            raise ValueError("features.calendar needs datetime ds; with an integer freq "
                             "use calendar: none")
        if self.features.lookback < self.data.season_length:
            raise ValueError(
                f"features.lookback ({self.features.lookback}) must be >= data.season_length "
                f"({self.data.season_length}) so seasonal naive can see one season"
            )
        return self

    def _check_tune(self, names: list[str]) -> None:
        tune = self.tune
        entry = next((m for m in self.models if m.label == tune.model), None)
        if entry is None:
            raise ValueError(f"tune.model {tune.model!r} is not a models: entry "
                             f"({', '.join(names)})")
        options = set(ENTRY_MODELS[entry.type].model_fields) - {"type", "name"}
        training = {f"training.{k}" for k in TrainingConfig.model_fields}
        unknown = sorted(set(tune.space) - options - training)
        if unknown:
            raise ValueError(f"tune.space: unknown option(s) {unknown} for {entry.type}; "
                             f"allowed: {', '.join(sorted(options))}, or training.<key>")

    @property
    def min_series_length(self) -> int:
        """Shortest series trainable without padding: lookback + horizon + val_size +
        test_size (one full training window, validation and holdout)."""
        f = self.features
        return f.lookback + f.horizon + self.val_size + self.evaluation.test_size

    @property
    def min_length(self) -> int:
        """Shortest series kept for training under the ``short_series`` policy."""
        return self.min_padded_length if self.data.short_series == "pad" \
            else self.min_series_length

    @property
    def min_train_length(self) -> int:
        """Points a series needs before a cut-off to be fit on (no holdout after it)."""
        return self.min_length - self.evaluation.test_size

    def without_checkpoints(self) -> PipelineConfig:
        """A copy that does not checkpoint (auxiliary fits: backtests, trials)."""
        return self.model_copy(update={"training": self.training.model_copy(
            update={"checkpoint": False})})

    @property
    def min_padded_length(self) -> int:
        """Shortest series trainable with ``short_series: pad``: one observed input point
        before a training target, plus validation and holdout."""
        return self.features.horizon + self.val_size + self.evaluation.test_size + 1

    @property
    def calendar(self) -> tuple[str, ...]:
        """The calendar features in use ('auto' resolved from freq)."""
        cal = self.features.calendar
        if cal == "none":
            return ()
        if cal == "auto":
            return default_calendar(self.data.freq)
        return tuple(dict.fromkeys(cal))

    @property
    def val_size(self) -> int:
        return self.training.val_size or self.features.horizon


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed at the parent of ``loc`` (for unknown-key messages)."""
    model: Any = PipelineConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if part in MODEL_TYPES:
            model = ENTRY_MODELS[part]
            continue
        if part == "models":  # the entry's type tag, next in loc, picks the model
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            return []
    return sorted(model.model_fields) if model is not None else []


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid pipeline config {source}:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc if p not in MODEL_TYPES) or "(top level)"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  - {key}: unknown key{hint}")
        elif e["type"] == "union_tag_invalid":
            lines.append(
                f"  - {key}.type: unknown model type {e['input'].get('type')!r}"
                f"; allowed: {', '.join(MODEL_TYPES)}"
                if isinstance(e["input"], dict) else f"  - {key}: {e['msg']}"
            )
        elif e["type"] == "missing":
            lines.append(f"  - {key}: required key is missing")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  - {key}: {msg}{shown}")
    return "\n".join(lines)


def parse_config(raw: Any, source: str = "", base_dir: Path | None = None) -> PipelineConfig:
    """Validate an already-parsed mapping; resolve relative paths against ``base_dir``."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"pipeline config {source} must be a YAML mapping of keys to values, "
            f"got {type(raw).__name__}",
            hint="start the file with `name:`, `data:`, `features:`, `models:` ... keys",
        )
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source),
                          hint="see the pipeline YAML reference in README.md") from None
    if base_dir is not None and cfg.data.path is not None and not cfg.data.path.is_absolute():
        resolved = (base_dir / cfg.data.path).resolve()
        _check_inside_project(cfg.data.path, resolved, base_dir, source)
        data = cfg.data.model_copy(update={"path": resolved})
        cfg = cfg.model_copy(update={"data": data})
    return cfg


def _check_inside_project(given: Path, resolved: Path, base_dir: Path, source: str) -> None:
    """A relative ``data.path`` may not climb (``..``) out of both the YAML's folder and
    the project (the working directory, home of ./mlruns): a shared pipeline file must not
    reach arbitrary files. An absolute path (or ``--data``) is an explicit choice."""
    roots = (base_dir.resolve(), Path.cwd().resolve())
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ConfigError(
            f"invalid pipeline config {source}: data.path {str(given)!r} resolves to "
            f"{resolved}, outside the pipeline's folder and the project ({roots[1]})",
            hint="move the data into the project, or give an absolute data.path (or --data) "
            "if that file is really meant")


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML file (``yaml.safe_load`` only)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file not found: {path}",
                          hint="pass the path of a pipeline YAML, e.g. pipelines/demo.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file", hint="save the YAML as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML could not be parsed{where}: {problem}",
                          hint="fix the YAML syntax; tags such as !!python/object are refused"
                          ) from None
    return parse_config(raw, source=str(path), base_dir=path.parent.resolve())


def resolved_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as plain JSON-able data (defaults filled in), for tracking."""
    return cfg.model_dump(mode="json")


def _default(field: Any) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def reference_markdown() -> str:
    """The README's model and training reference, generated from the pydantic models so the
    documentation cannot drift from what is validated (a test compares the two)."""
    rows = ["| `type` | what | covariates | options |", "|---|---|---|---|"]
    options: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for family, entry in ENTRY_MODELS.items():
        cls = families()[family]
        names = [n for n in entry.model_fields if n not in ("type", "name")]
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")
        uses = ", ".join(sorted(cls.covariates)) or "—"
        rows.append(f"| `{family}` | {doc} | {uses} | "
                    f"{', '.join(f'`{n}`' for n in names) or '—'} |")
        for n in names:
            f = entry.model_fields[n]
            key = (n, f.description or "")
            options.setdefault(key, (_default(f), []))[1].append(f"`{family}`")
    rows += ["", "| option | default | families | meaning |", "|---|---|---|---|"]
    for (n, desc), (default, fams) in sorted(options.items()):
        rows.append(f"| `{n}` | {default} | {', '.join(fams)} | {desc} |")
    for section, model in (("data", DataConfig), ("data.sql", SqlSource),
                           ("features", FeaturesConfig),
                           ("training", TrainingConfig), ("evaluation", EvaluationConfig),
                           ("evaluation.backtest", BacktestConfig),
                           ("promotion", PromotionConfig), ("drift", DriftConfig),
                           ("ensemble[]", EnsembleConfig),
                           ("tune", TuneConfig), ("execution", ExecutionConfig)):
        rows += ["", f"| `{section}:` key | default | meaning |", "|---|---|---|"]
        for n, f in model.model_fields.items():
            default = "required" if f.is_required() else _default(f)
            rows.append(f"| `{n}` | {default} | {f.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m deepcast.pipelines.config  -> the README reference tables
    print(reference_markdown(), end="")
