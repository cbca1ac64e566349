"""ARIMA per series with automatic order selection (Box & Jenkins; Hyndman & Khandakar's
stepwise search as pmdarima's ``auto_arima``, see ``forecasting.statistical``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from deepcast.forecasting.models.local import LocalForecaster, LocalOptions
from deepcast.forecasting.registry import register_family


class ARIMAOptions(LocalOptions):
    seasonal: bool = Field(
        True, description="Search seasonal orders too (needs two seasons of history).")
    stepwise: bool = Field(
        True, description="Stepwise order search (false: the full grid, much slower).")


@register_family("arima")
class ARIMA(LocalForecaster):
    """Seasonal ARIMA per series, orders chosen by AICc."""

    Options = ARIMAOptions
    method_options: ClassVar[tuple[str, ...]] = ("seasonal", "stepwise")
