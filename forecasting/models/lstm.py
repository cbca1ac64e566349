"""Global LSTM: stacked LSTM encoder over the lookback, dense head to all horizon steps.

Defaults keep the layers cuDNN-eligible (tanh/sigmoid, no recurrent dropout, no unroll),
so the fused kernels are used on a GPU.
"""

from __future__ import annotations

from forecasting.base import register_family
from forecasting.keras_model import KerasForecaster


@register_family("lstm")
class LSTMForecaster(KerasForecaster):
    """Options: ``units`` (64), ``layers`` (1), ``dropout`` (0.0), ``instance_norm`` (true)."""

    def network(self, x):
        import keras

        units = int(self.options.get("units", 64))
        layers = int(self.options.get("layers", 1))
        dropout = float(self.options.get("dropout", 0.0))
        for i in range(layers):
            x = keras.layers.LSTM(units, return_sequences=i < layers - 1, name=f"lstm_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        return keras.layers.Dense(self.spec.horizon, name="head")(x)
