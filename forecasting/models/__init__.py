"""Built-in forecaster families, one small file each, and the catalog of them: importing
this package registers every built-in family, so its :func:`families`,
:func:`build_forecaster` and :func:`load_forecaster` (the registry's) know them all."""

from deepcast.forecasting import ensemble  # noqa: F401  (saved ensembles load by family name)
from deepcast.forecasting.models import (  # noqa: F401
    arima,
    baselines,
    cnn,
    deepar,
    ets,
    gru,
    linear,
    lstm,
    mlp,
    nbeats,
    nhits,
    rnn,
    tft,
    theta,
    tide,
    transformer,
    tsmixer,
)
from deepcast.forecasting.registry import build_forecaster, families, load_forecaster

__all__ = ["build_forecaster", "families", "load_forecaster"]
