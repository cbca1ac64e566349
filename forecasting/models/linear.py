"""``linear``: DLinear (Zeng et al. 2023). The lookback is split into a trend (moving
average) and a remainder; one linear map per part goes to the horizon, and the two are
summed. That sum is one linear map of the concatenated parts, which the shared head is."""

from __future__ import annotations

from pydantic import Field

from deepcast.forecasting.keras_model import KerasForecaster, KerasOptions
from deepcast.forecasting.registry import register_family


class LinearOptions(KerasOptions):
    """Options of ``linear``."""

    moving_avg: int = Field(
        25, ge=1, description="Moving-average window of the trend (capped at the lookback; "
        "1 = no decomposition, a plain linear map).")


@register_family("linear")
class DLinearForecaster(KerasForecaster):
    """Decomposition + linear maps: a strong, cheap baseline for long horizons."""

    Options = LinearOptions

    def network(self, x):
        import keras

        k = min(int(self.options["moving_avg"]), self.spec.lookback)
        if k <= 1:
            return keras.layers.Flatten(name="flatten")(x)
        # edges average only the points inside the window (TF 'same' average pooling)
        trend = keras.layers.AveragePooling1D(k, strides=1, padding="same", name="trend")(x)
        remainder = keras.layers.Subtract(name="remainder")([x, trend])
        parts = keras.layers.Concatenate(axis=1, name="decomposition")([trend, remainder])
        return self.dropout(keras.layers.Flatten(name="flatten")(parts), "dropout")
