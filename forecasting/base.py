"""The one model contract every forecaster family implements, checked in one place.

A family is a :class:`Forecaster` subclass registered with
:func:`deepcast.forecasting.registry.register_family`, with its YAML options declared as a
pydantic :class:`FamilyOptions` model next to it. It maps
scaled input windows ``x`` of shape (n, lookback) to direct multi-horizon forecasts of
shape (n, horizon), or (n, horizon, n_quantiles) for a quantile model. Everything else
(windows, scaling, fitting loop, saving) is shared: Keras families only implement
:meth:`KerasForecaster.network`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

FORECASTER_FILE = "forecaster.json"
KERAS_FILE = "model.keras"
#: distribution heads that model counts (mean-scaled inputs, features.scaler: none)
COUNT_DISTRIBUTIONS = frozenset({"poisson", "negbin"})


@dataclass(frozen=True)
class WindowSpec:
    """Window geometry shared by training and forecasting."""

    lookback: int
    horizon: int
    season_length: int = 1
    #: every seasonal period when there are several (the first is ``season_length``)
    seasonalities: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "seasonalities", tuple(int(p) for p in self.seasonalities))
        if self.lookback < 1 or self.horizon < 1 or self.season_length < 1:
            raise ValueError(f"lookback, horizon and season_length must be >= 1: {self}")

    @property
    def periods(self) -> tuple[int, ...]:
        """The seasonal periods, the main one first."""
        return self.seasonalities or (self.season_length,)


@dataclass(frozen=True)
class InputSpec:
    """The covariate inputs a model is built for (the defaults: target history only).

    Neural families take all of them: past covariates and the lookback part of future ones
    as extra channels of the history, the horizon part of future covariates, numeric statics
    and embeddings (series ID, categorical statics) next to the encoder's features before
    the head. Baselines use the target only.
    """

    n_past: int = 0
    n_future: int = 0
    n_static: int = 0
    cardinalities: tuple[int, ...] = ()  # categorical statics, unseen code 0 included
    embedding_dim: int = 4
    n_series: int = 0  # series-ID vocabulary incl. unseen code 0 (0: no ID embedding)
    id_embedding: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cardinalities", tuple(int(c) for c in self.cardinalities))

    def restricted(self, kinds: frozenset[str]) -> InputSpec:
        """The inputs of the covariate ``kinds`` a family uses ("static", "past", "future");
        the others are left out of its network (and so never fed to it)."""
        static = "static" in kinds
        return InputSpec(
            n_past=self.n_past if "past" in kinds else 0,
            n_future=self.n_future if "future" in kinds else 0,
            n_static=self.n_static if static else 0,
            cardinalities=self.cardinalities if static else (),
            embedding_dim=self.embedding_dim,
            n_series=self.n_series if static else 0,
            id_embedding=self.id_embedding if static else 0)

    @property
    def any(self) -> bool:
        return bool(self.n_past or self.n_future or self.n_static or self.cardinalities
                    or (self.n_series and self.id_embedding))


@dataclass(frozen=True)
class TrainSettings:
    """Fitting options for trainable families (from the pipeline's ``training`` section)."""

    max_epochs: int = 30
    patience: int = 5
    batch_size: int = 256
    seed: int = 0
    learning_rate: float = 1e-3
    loss: str = "mae"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    l2: float = 0.0
    clipnorm: float | None = None
    schedule: str = "none"
    device: str = "auto"
    mixed_precision: str | bool = "auto"
    jit_compile: str | bool = "auto"
    steps_per_execution: str | int = "auto"
    checkpoint_every: float = 10.0  # seconds of training between checkpoints (0: every epoch)
    windows_per_epoch: int | None = None  # a seeded sample per epoch; None: every window
    # batches an epoch takes at least (repeating its windows; 'auto': 50 or
    # DEEPCAST_MIN_STEPS_PER_EPOCH, the YAML's default); 0: one pass
    min_steps_per_epoch: int | str = 0

    def __post_init__(self) -> None:
        """'auto' resolved once, here: the fit and its checkpoint's fingerprint see the
        number of batches it trains with, not the word."""
        from deepcast.forecasting.runtime import min_steps_per_epoch

        object.__setattr__(self, "min_steps_per_epoch",
                           min_steps_per_epoch(self.min_steps_per_epoch))


class FamilyOptions(BaseModel):
    """A family's YAML options (strict: unknown keys are errors). Subclass per family and
    document every field: the README table and the config errors come from here."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TrainingData:
    """Scaled series back to back and the window starts used to fit (see features.windows)."""

    values: np.ndarray  # (n_points,) float32, scaled; NaN = left padding
    train_starts: np.ndarray  # (n_train,) int64 absolute window starts
    val_starts: np.ndarray  # (n_val,) int64; empty: no validation, monitor training loss
    covariates: Any = None  # deepcast.features.covariates.Covariates aligned with values, or None
    offsets: np.ndarray | None = None  # series offsets of values (for per-series inputs)
    #: the windows come from this ``forecasting.streams.WindowStream`` instead (the panel
    #: is not in this process: values and starts are empty; needs windows_per_epoch)
    stream: Any = None

    @property
    def n_train(self) -> int:
        return self.stream.n_train if self.stream is not None else len(self.train_starts)

    @property
    def n_val(self) -> int:
        return self.stream.n_val if self.stream is not None else len(self.val_starts)


EpochHook = Callable[[int, dict[str, float]], None]

@dataclass
class Forecaster(ABC):
    """A named, configured model of one family."""

    name: str
    spec: WindowSpec
    options: dict[str, Any] = field(default_factory=dict)
    inputs: InputSpec = field(default_factory=InputSpec)

    family: ClassVar[str] = ""
    trainable: ClassVar[bool] = False
    #: fits a model per series at every forecast (statistical families): not free to run
    local: ClassVar[bool] = False
    #: covariate kinds the family uses ("static", "past", "future"); others are ignored
    covariates: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[FamilyOptions]] = FamilyOptions

    def __post_init__(self) -> None:
        # validated and defaults filled in once, so saved options are complete
        self.options = self.Options.model_validate(self.options).model_dump(mode="json")
        self.inputs = self.inputs.restricted(self.covariates)

    @property
    def quantiles(self) -> tuple[float, ...]:
        """Quantile levels of a probabilistic model; empty for a point forecaster."""
        return tuple(self.options.get("quantiles") or ())

    def fit(self, data: TrainingData, settings: TrainSettings,
            on_epoch: EpochHook | None = None, checkpoint_dir: str | Path | None = None
            ) -> dict[str, list[float]]:
        """Fit on the training windows of ``data``; baselines have nothing to learn."""
        return {}

    @abstractmethod
    def predict(self, x: np.ndarray, covariates: dict[str, np.ndarray] | None = None
                ) -> np.ndarray:
        """Forecast ``horizon`` steps from scaled windows ``x`` (n, lookback); NaN marks
        left padding of short series. ``covariates``: the other inputs of
        ``features.windows.window_inputs`` (used by models built with an :class:`InputSpec`).
        """

    def use_history(self, longest: int) -> None:  # noqa: B027 (optional hook)
        """Local families widen their window towards the ``longest`` series of the training
        data (they fit on whole histories); global models keep theirs."""

    def notes(self) -> list[str]:
        """What the last forecast rests on that a reader should know (fallbacks)."""
        return []

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "name": self.name, "spec": asdict(self.spec),
                "options": self.options, "inputs": asdict(self.inputs)}
        (path / FORECASTER_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        self._save_weights(path)
        return path

    def _save_weights(self, path: Path) -> None:  # noqa: B027 (optional hook)
        """Families with learned state write it here."""

    def _load_weights(self, path: Path) -> None:  # noqa: B027 (optional hook)
        """Families with learned state read it here."""

    def check_output(self, x: np.ndarray, yhat: np.ndarray) -> np.ndarray:
        """The contract, asserted once for every family."""
        expected = (len(x), self.spec.horizon) + ((len(self.quantiles),) if self.quantiles
                                                  else ())
        if yhat.shape != expected:
            raise RuntimeError(f"{self.family} returned shape {yhat.shape}, expected {expected}")
        return yhat
