"""The pipeline YAML schema: one pydantic model, strict, with errors that name the key.

``PipelineConfig`` assembles the sections (``schema_data``, ``schema_models``,
``schema_run``) and checks what spans sections: model names, ensemble members, the tune
space, covariate columns, calendar vs freq, lookback vs season.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from deepcast.features.covariates import default_calendar
from deepcast.features.errors import ConfigError
from deepcast.features.hierarchy import LEVEL
from deepcast.features.schema import AUTO, DS, ID, Y
from deepcast.forecasting.base import COUNT_DISTRIBUTIONS
from deepcast.pipelines.config.auto import AutoConfig, expand_auto
from deepcast.pipelines.config.base import Name, _Strict
from deepcast.pipelines.config.derived import Lengths, auto_windows
from deepcast.pipelines.config.schema_data import DataConfig, FeaturesConfig
from deepcast.pipelines.config.schema_hierarchy import HierarchyConfig
from deepcast.pipelines.config.schema_models import (
    ENTRY_MODELS,
    EnsembleConfig,
    ModelConfig,
    TuneConfig,
)
from deepcast.pipelines.config.schema_run import (
    DriftConfig,
    EvaluationConfig,
    ExecutionConfig,
    PromotionConfig,
    TrainingConfig,
)

METRICS = ("mae", "rmse", "smape", "mase")


class PipelineConfig(_Strict):
    """One use case: data, features, models, training, evaluation."""

    name: Name = Field(description="MLflow experiment and registered model name.")
    data: DataConfig
    features: FeaturesConfig
    models: list[ModelConfig] = Field(
        min_length=1, description="The models to train and score, or `auto`: the `auto.preset` "
        "set, a default lookback and a greedy ensemble of them (see `auto:`).")
    auto: AutoConfig = Field(AutoConfig(), description="What `models: auto` trains, and a "
                             "time limit on training (for any list of models).")
    ensemble: list[EnsembleConfig] = Field(
        [], description="Ensembles of the models (scored and promoted like models).")
    tune: TuneConfig | None = Field(None, description="Hyperparameter search (deepcast tune).")
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig
    promotion: PromotionConfig = PromotionConfig()
    drift: DriftConfig = Field(DriftConfig(), description="Drift check before a retrain.")
    execution: ExecutionConfig = Field(ExecutionConfig(), description="Serial or Dask "
                                       "fan-out of the fits.")
    hierarchy: HierarchyConfig | None = Field(
        None, description="Levels of a hierarchy built from the bottom series and "
        "reconciled forecasts that add up (see Hierarchies).")

    @model_validator(mode="before")
    @classmethod
    def _expand_auto(cls, raw: Any) -> Any:
        """``models: auto`` written out (:mod:`deepcast.pipelines.config.auto`)."""
        models = raw.get("models") if isinstance(raw, dict) else None
        if isinstance(models, str) and models != "auto":
            raise ValueError(f"models: {models!r} is neither a list of model entries nor "
                             "'auto'")
        return expand_auto(raw)

    @model_validator(mode="after")
    def _check_consistency(self) -> PipelineConfig:
        names = [m.label for m in self.models]
        self._check_names(names)
        if self.tune is not None:
            self._check_tune(names)
        self._check_columns()
        self._check_count_heads()
        self._check_hierarchy()
        if isinstance(self.features.calendar, list) and isinstance(self.data.freq, int):
            raise ValueError("features.calendar needs datetime ds; with an integer freq "
                             "use calendar: none")
        if self.features.lookback < self.data.season_length:
            raise ValueError(
                f"features.lookback ({self.features.lookback}) must be >= data.season_length "
                f"({self.data.season_length}) so seasonal naive can see one season"
            )
        return self

    def _check_names(self, names: list[str]) -> None:
        """Ensemble members name models; model and ensemble names are distinct."""
        labels = names + [e.name for e in self.ensemble]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        for e in self.ensemble:
            unknown = sorted(set(e.members) - set(names))
            if unknown:
                raise ValueError(f"ensemble {e.name!r}: unknown member(s) {unknown}; members "
                                 f"name models: entries ({', '.join(names)})")
        if dupes:
            raise ValueError(
                f"models: duplicate model name(s) {dupes}; give each entry a distinct `name:`"
            )
        bagged = {f"{e.name}_{i}" for e in self.ensemble if e.method == "bagging"
                  for i in range(e.n_members)}
        if bagged & set(labels):  # a member's fit would share that model's checkpoint
            raise ValueError(
                f"ensemble: {sorted(bagged & set(labels))} name a model and a member of a "
                "bagging ensemble (ensemble NAME's members are NAME_0, NAME_1, ...); rename "
                "the model or the ensemble")

    def _check_count_heads(self) -> None:
        """A count distribution models the counts: no shifting scaler or transform first."""
        f = self.features
        for i, m in enumerate(self.models):
            kind = getattr(m, "distribution", None)
            if kind in COUNT_DISTRIBUTIONS and (f.scaler != "none"
                                                  or f.target_transform != "none"):
                raise ValueError(
                    f"models.{i} ({m.label}): distribution: {kind} models the counts "
                    "themselves; set features.scaler: none and features.target_transform: "
                    "none (the network scales each window by its mean count itself)")

    def _check_columns(self) -> None:
        """Each covariate is declared once and is not the id/time/target column, nor named
        like one under deepcast's own names (unique_id, ds, y: the data is read into them,
        so a renamed id/time/target would land on that covariate)."""
        d = self.data
        declared = [*d.static, *d.past, *d.future]
        reserved = {d.id_col, d.time_col, d.target_col}
        clash = sorted({c for c in declared if declared.count(c) > 1 or c in reserved})
        if clash:
            raise ValueError(
                f"data: covariate column(s) {clash} are declared twice or are the id/time/"
                "target column; list each covariate once, under static, past or future")
        inner = sorted({c for c in declared if c in (ID, DS, Y)})
        if inner:
            raise ValueError(
                f"data: covariate column(s) {inner} have the name deepcast gives the id/"
                f"time/target columns ({ID}, {DS}, {Y}) while data.id_col/time_col/"
                f"target_col are {d.id_col}/{d.time_col}/{d.target_col}; rename the "
                f"covariate in the data (e.g. {inner[0]}_cov) and in the YAML")
        if d.categorical is not None and not set(d.categorical) <= set(d.static):
            extra = sorted(set(d.categorical) - set(d.static))
            raise ValueError(f"data.categorical: {extra} are not static covariates; list "
                             "them under data.static too")

    def _check_hierarchy(self) -> None:
        h, d = self.hierarchy, self.data
        level = self.promotion.level
        if h is None:
            if level != "all":
                raise ValueError(f"promotion.level: {level!r} needs a hierarchy: (without "
                                 "one, every series is one level: use all)")
            return
        spec = h.spec()
        names = ["all", "bottom", *(spec.level_name(lv) for lv in spec.levels)]
        if level not in names:
            raise ValueError(f"promotion.level: {level!r} is not a level of the hierarchy; "
                             f"use one of {', '.join(names)}")
        own = [] if h.separator is not None else h.columns
        missing = [c for c in own if c not in d.static]
        if missing:
            raise ValueError(f"hierarchy.columns {missing} are columns of the data: list them "
                             "under data.static too (or give hierarchy.separator to read "
                             "them from unique_id)")
        other = [c for c in (*d.static, *d.past, *d.future) if c not in own]
        if other:
            raise ValueError(f"hierarchy: covariates {other} are not aggregated to the "
                             "upper levels; remove them or the hierarchy")
        if LEVEL in (d.id_col, d.time_col, d.target_col, *d.static):
            raise ValueError(f"hierarchy adds a static column {LEVEL!r}; rename yours")

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
    def lengths(self) -> Lengths:
        """The series lengths this geometry implies (holdout, validation, minimum series
        lengths, backtest span), computed in one place."""
        f, bt = self.features, self.evaluation.backtest
        return Lengths(lookback=f.lookback, horizon=f.horizon,
                       val_size=self.training.val_size or f.horizon,
                       test_size=self.evaluation.test_size, step=bt.step or f.horizon,
                       n_windows=bt.n_windows or auto_windows(self.data.season_length,
                                                              bt.step or f.horizon),
                       pad=self.data.short_series == "pad")

    @property
    def calibration_windows(self) -> int:
        """Windows before a cut-off whose residuals calibrate its conformal bands in a
        backtest: ``evaluation.backtest.calibration_windows``, or as many as ``train``
        calibrates on (selection windows, with ``selection: backtest``, plus the holdout's
        forecast origins)."""
        ev = self.evaluation
        if ev.backtest.calibration_windows is not None:
            return ev.backtest.calibration_windows
        n = self.lengths
        return (n.n_windows if ev.selection == "backtest" else 0) + n.holdout_origins

    @property
    def min_series_length(self) -> int:
        """Shortest series trainable without padding: lookback + horizon + val_size +
        test_size (one full training window, validation and holdout)."""
        return self.lengths.full

    @property
    def min_length(self) -> int:
        """Shortest series kept for training under the ``short_series`` policy."""
        return self.lengths.min_length

    @property
    def min_train_length(self) -> int:
        """Points a series needs before a cut-off to be fit on (no holdout after it)."""
        return self.lengths.min_train_length

    def with_freq(self, freq: str | int) -> PipelineConfig:
        """A copy with ``data.freq`` set (``auto`` resolved from the data); ConfigError when
        integer steps meet a list of calendar features (they need dates)."""
        if isinstance(freq, int) and isinstance(self.features.calendar, list):
            raise ConfigError(f"data.freq: auto found integer steps in ds (step {freq}), and "
                              "features.calendar lists calendar features, which need dates",
                              hint="use features.calendar: none (or auto), or write ds as "
                              "dates")
        return self.model_copy(update={"data": self.data.model_copy(update={"freq": freq})})

    @property
    def reference_model(self) -> Any:
        """The seasonal naive entry a run scores as its reference (skill, the gate): the
        YAML's own, else a default one."""
        return next((m for m in self.models if m.type == "seasonal_naive"), None) \
            or ENTRY_MODELS["seasonal_naive"](type="seasonal_naive")

    @property
    def scored_models(self) -> list[Any]:
        """The model entries a backtest scores: the YAML's, seasonal naive first if absent."""
        ref = self.reference_model
        return list(self.models) if ref in self.models else [ref, *self.models]

    def without_checkpoints(self) -> PipelineConfig:
        """A copy that does not checkpoint (auxiliary fits: backtests, trials)."""
        return self.model_copy(update={"training": self.training.model_copy(
            update={"checkpoint": False})})

    @property
    def min_padded_length(self) -> int:
        """Shortest series trainable with ``short_series: pad``: one observed input point
        before a training target, plus validation and holdout."""
        return self.lengths.padded

    @property
    def calendar(self) -> tuple[str, ...]:
        """The calendar features in use ('auto' resolved from freq)."""
        cal = self.features.calendar
        if cal == "none":
            return ()
        if cal == "auto":
            if self.data.freq == AUTO:
                raise ConfigError("data.freq is 'auto' and was not resolved: the calendar "
                                  "features follow from the inferred freq",
                                  hint="validate the data first (the run's config is the one "
                                  "validation returns), or set data.freq")
            return default_calendar(self.data.freq)
        return tuple(dict.fromkeys(cal))

    @property
    def val_size(self) -> int:
        """Validation span before the holdout (``training.val_size``, default horizon)."""
        return self.lengths.val_size
