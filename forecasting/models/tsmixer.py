"""``tsmixer``: TSMixer (Chen et al. 2023). Blocks that alternate an MLP across time
(shared by every channel) and an MLP across channels (shared by every step), each with a
residual link and a norm; a linear temporal projection maps the lookback to the horizon.
With future covariates or statics the extended variant (TSMixer-Ext) is built: the
history is projected to the horizon first, the future covariates join it there, and every
channel-mixing MLP is conditioned on the statics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from deepcast.forecasting.keras_model import KerasForecaster, KerasOptions, NetworkInputs
from deepcast.forecasting.registry import register_family


class TSMixerOptions(KerasOptions):
    """Options of ``tsmixer`` (defaults: the paper's but the norm)."""

    blocks: int = Field(2, ge=1, le=16, description="Mixer blocks (time + feature mixing).")
    ff_dim: int = Field(64, ge=1, le=16384, description="Hidden width of feature mixing.")
    hidden_size: int = Field(64, ge=1, le=4096, description="Channels the history and the "
                             "future covariates are mixed into (the covariate variant only).")
    norm: Literal["layer", "batch"] = Field(
        "layer", description="Norm in every block: layer, or batch (the paper's; its running "
        "statistics lag on the short budgets forecasting runs use, so not the default).")
    activation: Literal["relu", "gelu", "tanh", "swish"] = Field(
        "relu", description="Activation of the mixing MLPs.")


@register_family("tsmixer")
class TSMixerForecaster(KerasForecaster):
    """All-MLP mixing of time and channels: strong and cheap on long lookbacks."""

    Options = TSMixerOptions

    def _norm(self, x, name: str):
        import keras

        if self.options["norm"] == "layer":
            return keras.layers.LayerNormalization(axis=[-2, -1], name=name)(x)
        shape = tuple(x.shape[1:])  # batch statistics per (step, channel), as the paper
        x = keras.layers.Flatten(name=f"{name}_flat")(x)
        x = keras.layers.BatchNormalization(name=name)(x)
        return keras.layers.Reshape(shape, name=f"{name}_shape")(x)

    def time_mixing(self, x, name: str):
        import keras

        h = keras.layers.Permute((2, 1), name=f"{name}_to_time")(self._norm(x, f"{name}_norm"))
        h = keras.layers.Dense(x.shape[1], activation=self.options["activation"],
                               name=f"{name}_dense")(h)
        h = self.dropout(keras.layers.Permute((2, 1), name=f"{name}_back")(h),
                         f"{name}_dropout")
        return keras.layers.Add(name=f"{name}_add")([x, h])

    def feature_mixing(self, x, name: str, static=None, out: int | None = None):
        """Channel MLP with a residual link; conditioned on ``static`` (joined to every
        step) and mapped to ``out`` channels (the skip is projected when that changes)."""
        import keras

        out, skip = out or x.shape[-1], x
        if skip.shape[-1] != out:
            skip = keras.layers.Dense(out, name=f"{name}_skip")(skip)
        if static is not None:
            s = keras.layers.Dense(out, name=f"{name}_static")(static)
            s = keras.layers.RepeatVector(x.shape[1], name=f"{name}_static_steps")(s)
            x = keras.layers.Concatenate(name=f"{name}_conditioned")([x, s])
        h = keras.layers.Dense(int(self.options["ff_dim"]), activation=self.options[
            "activation"], name=f"{name}_dense1")(self._norm(x, f"{name}_norm"))
        h = keras.layers.Dense(out, name=f"{name}_dense2")(self.dropout(h, f"{name}_drop1"))
        return keras.layers.Add(name=f"{name}_add")([skip, self.dropout(h, f"{name}_drop2")])

    def forward(self, parts: NetworkInputs):
        import keras

        H, q = self.spec.horizon, self.n_outputs
        x = keras.layers.Concatenate(name="channels")(parts.history)
        if parts.future is None and not parts.static:  # TSMixer: mix, then project to H
            for i in range(int(self.options["blocks"])):
                x = self.feature_mixing(self.time_mixing(x, f"time{i}"), f"feature{i}")
            x = keras.layers.Permute((2, 1), name="to_time")(x[:, :, :1])  # target channel
            x = keras.layers.Dense(H * q, name="temporal_projection", dtype="float32")(x)
            return self.finish(keras.layers.Reshape((H, q), name="steps")(x))
        # TSMixer-Ext: project to H, join the future covariates, conditional mixing
        static = (keras.layers.Concatenate(name="statics")(parts.static)
                  if len(parts.static) > 1 else (parts.static or [None])[0])
        x = keras.layers.Permute((2, 1), name="to_time")(x)
        x = keras.layers.Permute((2, 1), name="projected")(
            keras.layers.Dense(H, name="temporal_projection")(x))
        hidden = int(self.options["hidden_size"])
        x = self.feature_mixing(x, "history_mixing", static, hidden)
        if parts.future is not None:
            future = self.feature_mixing(parts.future, "future_mixing", static, hidden)
            x = keras.layers.Concatenate(name="joined")([x, future])
        for i in range(int(self.options["blocks"])):
            x = self.feature_mixing(self.time_mixing(x, f"time{i}"), f"feature{i}", static)
        return self.finish(keras.layers.Dense(q, name="output", dtype="float32")(x))
