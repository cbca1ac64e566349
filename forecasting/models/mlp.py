"""``mlp``: a feed-forward network over the flattened lookback (the FFNN of neuralforecast)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from deepcast.forecasting.keras_model import HiddenNormOptions, KerasForecaster
from deepcast.forecasting.registry import register_family


class MLPOptions(HiddenNormOptions):
    """Options of ``mlp``."""

    hidden_size: int = Field(256, ge=1, le=16384, description="Units per hidden layer.")
    layers: int = Field(2, ge=1, le=16, description="Hidden layers.")
    activation: Literal["relu", "gelu", "tanh", "swish"] = Field(
        "relu", description="Hidden activation.")


@register_family("mlp")
class MLPForecaster(KerasForecaster):
    """Multi-layer perceptron: fast, strong on short lookbacks."""

    Options = MLPOptions

    def network(self, x):
        import keras

        x = keras.layers.Flatten(name="flatten")(x)
        for i in range(int(self.options["layers"])):
            x = keras.layers.Dense(int(self.options["hidden_size"]),
                                   activation=self.options["activation"], name=f"dense_{i}")(x)
            norm = self.normalization(f"norm_{i}")
            x = norm(x) if norm is not None else x
            x = self.dropout(x, f"dropout_{i}")
        return x
