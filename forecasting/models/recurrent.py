"""Shared encoder of the recurrent families (``rnn``, ``lstm``, ``gru``).

Defaults keep the layers cuDNN-eligible on a GPU (tanh/sigmoid activations, no recurrent
dropout, no unroll, GRU ``reset_after``), so the fused kernels are used; dropout is applied
between layers, not inside the recurrence, for the same reason.
"""

from __future__ import annotations

from pydantic import Field

from deepcast.forecasting.keras_model import HiddenNormOptions, KerasForecaster


class RecurrentOptions(HiddenNormOptions):
    """Options of the recurrent families."""

    units: int = Field(64, ge=1, le=4096, description="Hidden units per recurrent layer.")
    layers: int = Field(1, ge=1, le=8, description="Stacked recurrent layers.")
    bidirectional: bool = Field(
        False, description="Bidirectional encoder (reads the lookback both ways)."
    )


class RecurrentForecaster(KerasForecaster):
    """Stacked recurrent encoder over the lookback; the last state feeds the head."""

    Options = RecurrentOptions
    cell: str = ""  # keras layer class name: SimpleRNN, LSTM or GRU

    def network(self, x):
        import keras

        layer_cls = getattr(keras.layers, self.cell)
        n = int(self.options["layers"])
        for i in range(n):
            layer = layer_cls(int(self.options["units"]), return_sequences=i < n - 1,
                              name=f"{self.family}_{i}")
            if self.options["bidirectional"]:
                layer = keras.layers.Bidirectional(layer, name=f"bi_{self.family}_{i}")
            x = layer(x)
            norm = self.normalization(f"norm_{i}")
            if norm is not None:
                x = norm(x)
            x = self.dropout(x, f"dropout_{i}")
        return x
