"""The `models:`, `ensemble:` and `tune:` sections: one strict entry model per registered
forecaster family, ensembles of those entries, and the search space of a tune."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, create_model, model_validator

from deepcast.forecasting.models import families
from deepcast.pipelines.config.base import Name, _Strict


class _ModelBase(_Strict):
    name: Name | None = Field(None, description="Name in runs and the registry (default: type).")

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


class EnsembleConfig(_Strict):
    """An ensemble: a model like the others (scored, logged, registrable, servable)."""

    name: Name = Field(description="Name in runs and the registry.")
    method: Literal["mean", "median", "weighted", "stacking", "greedy", "bagging"] = Field(
        description="mean / median of the members; weighted: weights 1/MASE from a backtest "
        "of the members on the training span; stacking: an affine combination per horizon "
        "step fit on those out-of-sample backtest forecasts; greedy: Caruana ensemble "
        "selection with replacement on those forecasts (members picked one at a time, each "
        "time the one that most lowers the running mean's MASE; weight = share of picks, "
        "members never picked get none); bagging: `model` trained with "
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

