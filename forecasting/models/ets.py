"""ETS (error, trend, season) exponential smoothing, chosen per series by AICc
(Hyndman et al. 2008; statsmodels' ETSModel, see ``forecasting.statistical``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from deepcast.forecasting.models.local import LocalForecaster, LocalOptions
from deepcast.forecasting.registry import register_family


class ETSOptions(LocalOptions):
    model: str = Field(
        "ZZZ", pattern=r"^[AMZ][ANZ][AMNZ]$", description="Error, trend and season letters "
        "(A additive, M multiplicative, N none, Z choose by AICc), as statsforecast's "
        "AutoETS: ZZZ tries every stable model; M needs positive data.")
    damped: bool | None = Field(
        None, description="Damp an additive trend (null: try both).")


@register_family("ets")
class ETS(LocalForecaster):
    """Exponential smoothing state space model per series, selected by AICc."""

    Options = ETSOptions
    method_options: ClassVar[tuple[str, ...]] = ("model", "damped")
