"""Built-in forecaster families, one small file each (imported to register them)."""

from deepcast.forecasting import ensemble  # noqa: F401  (saved ensembles load by family name)
from deepcast.forecasting.models import (  # noqa: F401
    baselines,
    cnn,
    gru,
    linear,
    lstm,
    mlp,
    rnn,
    transformer,
)
