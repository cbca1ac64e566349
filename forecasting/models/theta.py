"""The Theta method per series (Assimakopoulos & Nikolopoulos 2000; statsmodels'
ThetaModel, see ``forecasting.statistical``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from deepcast.forecasting.models.local import LocalForecaster, LocalOptions
from deepcast.forecasting.registry import register_family


class ThetaOptions(LocalOptions):
    deseasonalize: bool = Field(
        True, description="Test for seasonality (90 %) and remove it before fitting.")


@register_family("theta")
class Theta(LocalForecaster):
    """Simple exponential smoothing with half the linear trend's slope (theta = 2)."""

    Options = ThetaOptions
    method_options: ClassVar[tuple[str, ...]] = ("deseasonalize",)
