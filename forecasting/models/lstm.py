"""``lstm``: global stacked LSTM encoder, dense head to every horizon step."""

from __future__ import annotations

from deepcast.forecasting.models.recurrent import RecurrentForecaster
from deepcast.forecasting.registry import register_family


@register_family("lstm")
class LSTMForecaster(RecurrentForecaster):
    """Long short-term memory (Hochreiter & Schmidhuber 1997); cuDNN kernel on a GPU."""

    cell = "LSTM"
