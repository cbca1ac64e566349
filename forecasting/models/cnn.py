"""``cnn``: temporal convolutional network (Bai et al. 2018): residual blocks of dilated
causal convolutions; the last time step's features feed the head."""

from __future__ import annotations

from pydantic import Field, field_validator

from deepcast.forecasting.keras_model import HiddenNormOptions, KerasForecaster
from deepcast.forecasting.registry import register_family


class CNNOptions(HiddenNormOptions):
    """Options of ``cnn``."""

    filters: int = Field(32, ge=1, le=4096, description="Channels of every convolution.")
    kernel_size: int = Field(3, ge=2, le=64, description="Convolution width.")
    dilations: list[int] | None = Field(
        None, description="Dilation per residual block; default 1, 2, 4, ... until the "
        "receptive field covers the lookback.")

    @field_validator("dilations")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 1):
            raise ValueError("dilations must be a non-empty list of integers >= 1")
        return v


def default_dilations(lookback: int, kernel_size: int) -> list[int]:
    """Powers of two until the receptive field (two convolutions per block) >= lookback."""
    dilations, field = [], 1
    while field < lookback:
        d = 2 ** len(dilations)
        dilations.append(d)
        field += 2 * (kernel_size - 1) * d
    return dilations or [1]


@register_family("cnn")
class TCNForecaster(KerasForecaster):
    """Dilated causal CNN: long receptive fields with few parameters, parallel in time."""

    Options = CNNOptions

    def network(self, x):
        import keras

        filters, k = int(self.options["filters"]), int(self.options["kernel_size"])
        dilations = self.options["dilations"] or default_dilations(self.spec.lookback, k)
        for b, d in enumerate(dilations):
            h = x
            for j in range(2):
                h = keras.layers.Conv1D(filters, k, padding="causal", dilation_rate=d,
                                        activation="relu", name=f"block{b}_conv{j}")(h)
                norm = self.normalization(f"block{b}_norm{j}")
                h = norm(h) if norm is not None else h
                h = self.dropout(h, f"block{b}_dropout{j}")
            if x.shape[-1] != filters:
                x = keras.layers.Conv1D(filters, 1, name=f"block{b}_skip")(x)
            x = keras.layers.Add(name=f"block{b}_add")([x, h])
        last = keras.layers.Cropping1D((self.spec.lookback - 1, 0), name="last_step")(x)
        return keras.layers.Flatten(name="flatten")(last)
