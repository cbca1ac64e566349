"""``nbeats``: N-BEATS (Oreshkin et al. 2020). Stacks of fully connected blocks, doubly
residual: every block removes its backcast from the lookback it was given and adds its
forecast to the sum. A block maps its MLP's output to coefficients on a basis: ``generic``
(learned, an identity basis), ``trend`` (polynomials of low degree) or ``seasonality``
(Fourier harmonics); trend + seasonality stacks are the interpretable N-BEATS-I. The
network reads the target only (the paper has no covariates; see ``nhits`` / ``tide``)."""

from __future__ import annotations

from functools import partial
from typing import Literal

from pydantic import Field

from deepcast.forecasting.keras_model import KerasForecaster, KerasOptions, NetworkInputs
from deepcast.forecasting.models.stacks import doubly_residual
from deepcast.forecasting.registry import register_family


class NBEATSOptions(KerasOptions):
    """Options of ``nbeats`` (defaults: neuralforecast's)."""

    stack_types: list[Literal["generic", "trend", "seasonality"]] = Field(
        ["generic", "trend", "seasonality"], min_length=1,
        description="Basis of each stack, in order: generic (learned), trend (polynomial), "
        "seasonality (Fourier). [trend, seasonality] is the interpretable N-BEATS-I.")
    blocks_per_stack: int = Field(1, ge=1, le=16, description="Blocks in each stack.")
    shared_weights: bool = Field(False, description="Blocks of a stack share their weights "
                                 "(as the paper's interpretable configuration).")
    hidden_size: int = Field(512, ge=1, le=16384, description="Units per MLP layer.")
    layers: int = Field(3, ge=1, le=8, description="Hidden layers of each block's MLP "
                        "(after a linear projection to hidden_size, as neuralforecast).")
    polynomial_degree: int = Field(2, ge=0, le=8, description="Degree of the trend basis.")
    harmonics: int = Field(2, ge=1, le=16, description="Harmonics per horizon length in the "
                           "seasonality basis.")


@register_family("nbeats")
class NBEATSForecaster(KerasForecaster):
    """Deep residual MLP stacks; interpretable trend/seasonality stacks on request."""

    Options = NBEATSOptions
    covariates = frozenset()

    def forward(self, parts: NetworkInputs):
        o, blocks = self.options, []
        for s, kind in enumerate(o["stack_types"]):
            block = _Block(self, kind, f"stack{s}")
            for b in range(int(o["blocks_per_stack"])):
                if b and not o["shared_weights"]:
                    block = _Block(self, kind, f"stack{s}_{b}")
                blocks.append((f"stack{s}_block{b}", partial(block.apply, index=b)))
        return doubly_residual(self, parts, blocks)


class _Block:
    """One block's layers (built once, so shared-weight blocks reuse them)."""

    def __init__(self, net: NBEATSForecaster, kind: str, name: str) -> None:
        import keras

        from deepcast.forecasting.layers import Basis

        o, L, H = net.options, net.spec.lookback, net.spec.horizon
        self.net, self.kind, self.name, self.q = net, kind, name, net.n_outputs
        self.hidden = [keras.layers.Dense(int(o["hidden_size"]), name=f"{name}_projection")]
        self.hidden += [keras.layers.Dense(int(o["hidden_size"]), activation="relu",
                                           name=f"{name}_dense{i}")
                        for i in range(int(o["layers"]))]
        if kind == "generic":
            self.k_back, self.k_fore, self.basis = L, H, None
        else:
            size = (int(o["polynomial_degree"]) + 1 if kind == "trend"
                    else int(o["harmonics"]))
            back = "trend" if kind == "trend" else "seasonality_backcast"
            self.basis = (Basis(back, L, size, H, name=f"{name}_backcast_basis"),
                          Basis(kind, H, size, H, name=f"{name}_forecast_basis"))
            self.k_back = self.k_fore = self.basis[1].matrix.shape[1]
        bias = kind == "generic"  # an interpretable block's coefficients carry no offset
        self.theta_back = keras.layers.Dense(self.k_back, use_bias=bias,
                                             name=f"{name}_theta_backcast")
        self.theta_fore = keras.layers.Dense(self.k_fore * self.q, use_bias=bias,
                                             name=f"{name}_theta_forecast", dtype="float32")
        self.shape = keras.layers.Reshape((self.k_fore, self.q), name=f"{name}_theta_q")

    def apply(self, name: str, residual, index: int):
        del name
        x = residual
        x = self.hidden[0](x)
        for i, layer in enumerate(self.hidden[1:]):
            x = self.net.dropout(layer(x), f"{self.name}_dropout{i}_{index}")
        backcast = self.theta_back(x)
        forecast = self.shape(self.theta_fore(x))
        if self.basis is not None:
            backcast, forecast = self.basis[0](backcast), self.basis[1](forecast)
        return backcast, forecast
