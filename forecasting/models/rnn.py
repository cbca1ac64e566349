"""``rnn``: global stacked Elman RNN (``SimpleRNN``) encoder, dense head."""

from __future__ import annotations

from deepcast.forecasting.models.recurrent import RecurrentForecaster
from deepcast.forecasting.registry import register_family


@register_family("rnn")
class RNNForecaster(RecurrentForecaster):
    """Plain recurrent network: the cheapest recurrent baseline."""

    cell = "SimpleRNN"
