"""The doubly residual stacking shared by N-BEATS and N-HiTS (Oreshkin et al. 2020): each
block reads what its predecessors left of the lookback, removes its own backcast from it
and adds its forecast to the running sum, which starts at the last observed value (the
naive level, as neuralforecast does)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Block = Callable[[str, Any], tuple[Any, Any]]  # (name, residual (b, L)) -> backcast, forecast


def doubly_residual(net: Any, parts: Any, blocks: list[tuple[str, Block]]):
    """Run ``blocks`` in order on the residual lookback of ``parts`` (a ``NetworkInputs``);
    each returns (backcast (batch, L), forecast (batch, H, n_outputs)). Returns the summed
    forecast as the model's output (``net.finish``)."""
    import keras
    from keras import ops

    H, q = net.spec.horizon, net.n_outputs
    residual = keras.layers.Flatten(name="residual_0")(parts.values)
    mask = keras.layers.Flatten(name="mask_flat")(parts.mask)
    level = keras.layers.RepeatVector(H, name="level")(parts.values[:, -1, :])
    # the level is every quantile's start, or a distribution's location only
    columns = ([level] + [ops.zeros_like(level)] * (q - 1) if net.distribution
               else [level] * q)
    forecast = keras.layers.Concatenate(name="naive_level")(columns) if q > 1 else level
    for name, block in blocks:
        backcast, block_forecast = block(name, residual)
        residual = keras.layers.Multiply(name=f"{name}_masked")(
            [keras.layers.Subtract(name=f"{name}_residual")([residual, backcast]), mask])
        forecast = keras.layers.Add(name=f"{name}_forecast", dtype="float32")(
            [forecast, block_forecast])
    return net.finish(forecast)


def mlp(net: Any, x, name: str):
    """The block's fully connected layers as neuralforecast builds them: a linear projection
    to ``hidden_size``, then ``layers`` dense layers with the activation (and dropout)."""
    import keras

    o = net.options
    x = keras.layers.Dense(int(o["hidden_size"]), name=f"{name}_projection")(x)
    for i in range(int(o["layers"])):
        x = keras.layers.Dense(int(o["hidden_size"]), activation=o.get("activation", "relu"),
                               name=f"{name}_dense{i}")(x)
        x = net.dropout(x, f"{name}_dropout{i}")
    return x
