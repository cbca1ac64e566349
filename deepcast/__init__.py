"""deepcast: time-series forecasting pipelines from one YAML file or from Python.

The Python API (pandas frames in, typed results out; see ``deepcast.flows.api``)::

    import deepcast

    cfg = deepcast.load_config("pipelines/demo.yaml")
    trained = deepcast.train(cfg)                  # validate, train, track, promote
    result = deepcast.forecast(cfg)                # the champion's forecast
    result.forecast.head()

``validate``, ``train``, ``backtest``, ``tune``, ``forecast`` and ``retrain`` take
``orchestrator="none"`` (plain calls, the default) or ``"prefect"`` (the CLI's flows).
Everything is imported on first use, so ``import deepcast`` stays cheap.

The four parts of the design card install as subpackages: ``deepcast.features`` (data to
arrays), ``deepcast.forecasting`` (the modelling core), ``deepcast.pipelines`` (the stages of
a run) and ``deepcast.flows`` (Prefect flows, the CLI and the API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("load_config", "validate", "train", "backtest", "tune", "forecast", "retrain",
        "ForecastReport", "ForecastOutput")
_RESULTS = ("ValidationResult", "TrainResult", "BacktestResult", "TuneResult",
            "ForecastResult", "RetrainResult")
_ERRORS = ("DeepcastError", "ConfigError", "DataError", "RunFailed", "ValidationFailed")

__all__ = [
    "load_config", "validate", "train", "backtest", "tune", "forecast", "retrain",
    "ForecastReport", "ForecastOutput", "ValidationResult", "TrainResult", "BacktestResult",
    "TuneResult", "ForecastResult", "RetrainResult", "DeepcastError", "ConfigError", "DataError",
    "RunFailed", "ValidationFailed", "__version__",
]

if TYPE_CHECKING:
    from deepcast.features.errors import (
        ConfigError,
        DataError,
        DeepcastError,
        RunFailed,
        ValidationFailed,
    )
    from deepcast.flows.api import (
        ForecastOutput,
        ForecastReport,
        backtest,
        forecast,
        load_config,
        retrain,
        train,
        tune,
        validate,
    )
    from deepcast.pipelines.results import (
        BacktestResult,
        ForecastResult,
        RetrainResult,
        TrainResult,
        TuneResult,
        ValidationResult,
    )


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (PEP 562)."""
    if name in _API:
        from deepcast.flows import api as module
    elif name in _RESULTS:
        from deepcast.pipelines import results as module
    elif name in _ERRORS:
        from deepcast.features import errors as module
    else:
        raise AttributeError(f"module 'deepcast' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
