"""``gru``: global stacked GRU encoder, dense head to every horizon step."""

from __future__ import annotations

from deepcast.forecasting.models.recurrent import RecurrentForecaster
from deepcast.forecasting.registry import register_family


@register_family("gru")
class GRUForecaster(RecurrentForecaster):
    """Gated recurrent unit (Cho et al. 2014), ``reset_after`` so cuDNN runs it on a GPU."""

    cell = "GRU"
