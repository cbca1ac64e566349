"""``tide``: TiDE (Das et al. 2023). Dense residual blocks only: the covariates of every
step are projected to a few features (feature projection), the flattened lookback, its
projected covariates and the statics are encoded and decoded into one small vector per
horizon step, a temporal decoder joins each step's vector with that step's projected
future covariates, and a linear map of the lookback is added (global residual)."""

from __future__ import annotations

from pydantic import Field

from deepcast.forecasting.keras_model import KerasForecaster, KerasOptions, NetworkInputs
from deepcast.forecasting.registry import register_family


class TiDEOptions(KerasOptions):
    """Options of ``tide`` (defaults: neuralforecast's)."""

    hidden_size: int = Field(512, ge=1, le=16384, description="Width of the dense encoder "
                             "and decoder (and of the projections' hidden layer).")
    encoder_layers: int = Field(1, ge=1, le=8, description="Residual blocks of the encoder.")
    decoder_layers: int = Field(1, ge=1, le=8, description="Residual blocks of the decoder.")
    decoder_output_dim: int = Field(32, ge=1, le=1024, description="Vector per horizon step "
                                    "handed to the temporal decoder.")
    temporal_decoder_dim: int = Field(128, ge=1, le=4096,
                                      description="Hidden width of the temporal decoder.")
    temporal_width: int = Field(4, ge=1, le=256, description="Features each step's "
                                "covariates are projected to.")
    layernorm: bool = Field(True, description="Layer norm at the end of every residual block.")
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="Dropout in every residual block.")


@register_family("tide")
class TiDEForecaster(KerasForecaster):
    """Encoder-decoder of dense residual blocks: fast, strong with future covariates."""

    Options = TiDEOptions

    def residual_block(self, x, hidden: int, out: int, name: str, norm: bool = True,
                       binary: bool = False):
        """Dense -> ReLU -> Dense -> dropout, plus a linear skip, then layer norm.
        ``binary``: ``x`` is the 0/1 observed mask alone, so the dense layers run on its
        two values and each step picks its row (the same outputs and gradients, dropout
        still per step) instead of a (batch, lookback, hidden) activation at every step,
        which was a third of TiDE's training step on CPU."""
        import keras

        from deepcast.forecasting.layers import BinaryLevels, PickLevel

        source = BinaryLevels(name=f"{name}_levels")(x) if binary else x
        h = keras.layers.Dense(hidden, activation="relu", name=f"{name}_hidden")(source)
        h = keras.layers.Dense(out, name=f"{name}_out")(h)
        skip = keras.layers.Dense(out, name=f"{name}_skip")(source)
        if binary:
            h = PickLevel(name=f"{name}_pick")([x, h])
            skip = PickLevel(name=f"{name}_pick_skip")([x, skip])
        h = keras.layers.Add(name=f"{name}_add")([self.dropout(h, f"{name}_dropout"), skip])
        return (keras.layers.LayerNormalization(name=f"{name}_norm")(h)
                if norm and self.options["layernorm"] else h)

    def forward(self, parts: NetworkInputs):
        import keras

        o, L, H, q = self.options, self.spec.lookback, self.spec.horizon, self.n_outputs
        hidden, width = int(o["hidden_size"]), int(o["temporal_width"])
        y = keras.layers.Flatten(name="lookback")(parts.values)
        # the observed mask is a past covariate: padded steps are told apart from zeros
        past = keras.layers.Concatenate(name="past_inputs")([parts.mask, parts.past]) \
            if parts.past is not None else parts.mask
        encoded = [y, keras.layers.Flatten(name="past_flat")(self.residual_block(
            past, hidden, width, "past_projection", binary=parts.past is None))]
        future = None
        if parts.future is not None:
            full = keras.layers.Concatenate(axis=1, name="future_inputs")(
                [parts.future_history, parts.future])
            future = self.residual_block(full, hidden, width, "future_projection")
            encoded.append(keras.layers.Flatten(name="future_flat")(future))
        x = keras.layers.Concatenate(name="encoder_inputs")([*encoded, *parts.static])
        for i in range(int(o["encoder_layers"])):
            x = self.residual_block(x, hidden, hidden, f"encoder{i}")
        n_dec, d_out = int(o["decoder_layers"]), int(o["decoder_output_dim"])
        for i in range(n_dec):
            x = self.residual_block(x, hidden, d_out * H if i == n_dec - 1 else hidden,
                                    f"decoder{i}")
        x = keras.layers.Reshape((H, d_out), name="per_step")(x)
        if future is not None:
            x = keras.layers.Concatenate(name="temporal_inputs")(
                [x, keras.layers.Cropping1D((L, 0), name="future_projected")(future)])
        # no norm on the per-step output: a layer norm over one value outputs its bias
        # only (neuralforecast 3.3 applies it, which reduces its TiDE to the linear skip)
        x = self.residual_block(x, int(o["temporal_decoder_dim"]), q, "temporal_decoder",
                                norm=False)
        skip = keras.layers.Dense(H * q, name="global_residual")(y)
        skip = keras.layers.Reshape((H, q), name="global_residual_steps")(skip)
        return self.finish(keras.layers.Add(name="forecast", dtype="float32")([x, skip]))
