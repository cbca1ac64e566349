"""``nhits``: N-HiTS (Challu et al. 2023). Stacks of MLP blocks; each block max-pools its
input (multi-rate sampling: a coarse stack sees a smoothed lookback), predicts a backcast of
the lookback and a few forecast knots, and interpolates the knots to the horizon
(hierarchical interpolation: coarse stacks forecast low frequencies). Blocks run on the
residual their predecessors left (backcast residual links); the forecast is the last value
(a naive level) plus the sum of the blocks' forecasts. Covariates as in neuralforecast's
NHITS: past and future ones pooled with the target, statics joined, into every block."""

from __future__ import annotations

from functools import partial
from typing import Literal

from pydantic import Field, model_validator

from deepcast.forecasting.keras_model import KerasForecaster, KerasOptions, NetworkInputs
from deepcast.forecasting.models.stacks import doubly_residual, mlp
from deepcast.forecasting.registry import register_family


class NHITSOptions(KerasOptions):
    """Options of ``nhits`` (defaults: neuralforecast's)."""

    pool_sizes: list[int] = Field(
        [2, 2, 1], min_length=1, description="Max-pool kernel of each stack's input (one per "
        "stack; the number of stacks is the length of this list).")
    downsample: list[int] = Field(
        [4, 2, 1], min_length=1, description="Frequency downsampling of each stack's forecast: "
        "horizon // d knots, linearly interpolated to the horizon (one per stack).")
    blocks_per_stack: int = Field(1, ge=1, le=16, description="Blocks in each stack.")
    hidden_size: int = Field(512, ge=1, le=16384, description="Units per MLP layer.")
    layers: int = Field(3, ge=1, le=8, description="Hidden layers of each block's MLP "
                        "(after a linear projection to hidden_size, as neuralforecast).")
    pooling: Literal["max", "average"] = Field("max", description="Pooling of the inputs.")
    activation: Literal["relu", "gelu", "tanh", "swish"] = Field(
        "relu", description="Hidden activation.")

    @model_validator(mode="after")
    def _one_per_stack(self) -> NHITSOptions:
        if len(self.pool_sizes) != len(self.downsample):
            raise ValueError(f"pool_sizes ({len(self.pool_sizes)} stacks) and downsample "
                             f"({len(self.downsample)} stacks) must have one value per stack")
        if min(self.pool_sizes + self.downsample) < 1:
            raise ValueError("pool_sizes and downsample must be >= 1")
        return self


@register_family("nhits")
class NHITSForecaster(KerasForecaster):
    """Multi-rate MLP stacks: strong on long horizons and seasonal data, and cheap."""

    Options = NHITSOptions

    def forward(self, parts: NetworkInputs):
        o, L, H = self.options, self.spec.lookback, self.spec.horizon
        blocks = []
        for s, (pool, down) in enumerate(zip(o["pool_sizes"], o["downsample"], strict=True)):
            for b in range(int(o["blocks_per_stack"])):
                blocks.append((f"stack{s}_block{b}", partial(
                    self._block, parts=parts, pool=min(int(pool), L), knots=max(H // down, 1))))
        return doubly_residual(self, parts, blocks)

    def _block(self, name: str, residual, parts: NetworkInputs, pool: int, knots: int):
        """One block: pooled inputs -> MLP -> (backcast (batch, L), forecast (batch, H, q))."""
        import keras

        from deepcast.forecasting.layers import Basis

        o, L, H, q = self.options, self.spec.lookback, self.spec.horizon, self.n_outputs
        layer = (keras.layers.MaxPooling1D if o["pooling"] == "max"
                 else keras.layers.AveragePooling1D)

        def pooled(x, what):
            x = layer(pool, strides=pool, padding="same", name=f"{name}_pool_{what}")(x)
            return keras.layers.Flatten(name=f"{name}_flat_{what}")(x)

        y = keras.layers.Reshape((L, 1), name=f"{name}_input")(residual)
        inputs = [pooled(y, "y")]
        inputs += [pooled(c, f"channels{j}") for j, c in enumerate(parts.channels)]
        if parts.future is not None:
            inputs.append(pooled(parts.future, "future"))
        x = (keras.layers.Concatenate(name=f"{name}_inputs")([*inputs, *parts.static])
             if len(inputs) + len(parts.static) > 1 else inputs[0])
        x = mlp(self, x, name)
        backcast = keras.layers.Dense(L, name=f"{name}_backcast")(x)
        theta = keras.layers.Dense(knots * q, name=f"{name}_knots", dtype="float32")(x)
        theta = keras.layers.Reshape((knots, q), name=f"{name}_knots_q")(theta)
        return backcast, Basis("interpolate", H, knots, H, name=f"{name}_interpolate")(theta)
