"""The pipeline YAML schema: one pydantic model, strict, with errors that name the key.

A pipeline file is loaded with ``yaml.safe_load`` only; unknown keys are errors; relative
paths are resolved against the YAML file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.errors import ConfigError

METRICS = ("mae", "rmse", "smape", "mase")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Where the long table is and how its columns are named."""

    path: Path = Field(description="CSV or Parquet file (relative to the YAML file).")
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
    short_series: Literal["drop", "error"] = Field(
        "drop",
        description="Series shorter than lookback + horizon + test_size: 'drop' them (listed in "
        "the validation report) or fail validation with 'error'.",
    )
    missing_y: Literal["error", "interpolate"] = Field(
        "error",
        description="Missing target values: 'error' fails validation; 'interpolate' fills them "
        "linearly within each series (edges: nearest value) and counts them in the report.",
    )

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


class _ModelBase(_Strict):
    name: str | None = Field(None, description="Name in runs and the registry (default: type).")

    @property
    def label(self) -> str:
        return self.name or self.type  # type: ignore[attr-defined]


class NaiveConfig(_ModelBase):
    """Last observed value repeated over the horizon."""

    type: Literal["naive"]


class SeasonalNaiveConfig(_ModelBase):
    """Value one season earlier (``data.season_length``) repeated over the horizon."""

    type: Literal["seasonal_naive"]


class LSTMConfig(_ModelBase):
    """Global LSTM encoder + dense head (direct multi-horizon)."""

    type: Literal["lstm"]
    units: int = Field(64, ge=1, le=4096, description="Hidden units per LSTM layer.")
    layers: int = Field(1, ge=1, le=8, description="Stacked LSTM layers.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the dense head.")
    instance_norm: bool = Field(
        True, description="Reversible instance normalisation: each input window is "
        "normalised by its own mean/std and the forecast mapped back (helps trending series).",
    )


ModelConfig = Annotated[
    NaiveConfig | SeasonalNaiveConfig | LSTMConfig, Field(discriminator="type")
]
MODEL_TYPES = ("naive", "seasonal_naive", "lstm")


class TrainingConfig(_Strict):
    """How Keras models are fit."""

    max_epochs: int = Field(30, ge=1, description="Upper bound on epochs.")
    patience: int = Field(5, ge=0, description="Early stopping patience on validation loss.")
    batch_size: int = Field(256, ge=1, description="Windows per batch.")
    seed: int = Field(0, ge=0, description="Seed for weights, shuffling and dropout.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate.")
    loss: Literal["mse", "mae", "huber"] = Field("mae", description="Training loss (scaled space).")
    val_size: int | None = Field(
        None, ge=1, description="Last points of the training span used for early stopping "
        "(default: horizon).",
    )
    jit_compile: Literal["auto"] | bool = Field(
        "auto", description="XLA compilation: 'auto' (on), true or false."
    )


class EvaluationConfig(_Strict):
    """Holdout scoring."""

    test_size: int = Field(ge=1, description="Last points of every series held out for scoring.")
    metric: Literal["mae", "rmse", "smape", "mase"] = Field(
        "mase", description="Metric used to choose the best model and to promote."
    )


class PromotionConfig(_Strict):
    """The gate between challenger and champion."""

    margin: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Relative improvement the challenger needs over the champion "
        "(0.02 = 2 % lower metric).",
    )


class PipelineConfig(_Strict):
    """One use case: data, features, models, training, evaluation."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="MLflow experiment and registered model name.",
    )
    data: DataConfig
    features: FeaturesConfig
    models: list[ModelConfig] = Field(min_length=1)
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig
    promotion: PromotionConfig = PromotionConfig()

    @model_validator(mode="after")
    def _check_consistency(self) -> PipelineConfig:
        labels = [m.label for m in self.models]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(
                f"models: duplicate model name(s) {dupes}; give each entry a distinct `name:`"
            )
        if self.features.lookback < self.data.season_length:
            raise ValueError(
                f"features.lookback ({self.features.lookback}) must be >= data.season_length "
                f"({self.data.season_length}) so seasonal naive can see one season"
            )
        return self

    @property
    def min_series_length(self) -> int:
        """Shortest series that can be trained and scored: lookback + horizon + test_size."""
        return self.features.lookback + self.features.horizon + self.evaluation.test_size

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
            model = {"naive": NaiveConfig, "seasonal_naive": SeasonalNaiveConfig,
                     "lstm": LSTMConfig}[part]
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
    if base_dir is not None and not cfg.data.path.is_absolute():
        data = cfg.data.model_copy(update={"path": (base_dir / cfg.data.path).resolve()})
        cfg = cfg.model_copy(update={"data": data})
    return cfg


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
