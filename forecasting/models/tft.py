"""Temporal Fusion Transformer (Lim et al. 2021).

Every input variable is embedded and put through a gated residual network (GRN) of its
own, and weighted by a variable selection network (VSN: a GRN over all of them, softmax);
the statics feed four encoders (selection, enrichment and the LSTM's initial states); an
LSTM encoder reads the selected history, an LSTM decoder the selected known inputs of the
horizon (learned positions when there are none); a gated skip joins them; static
enrichment, interpretable multi-head attention (heads share the value projection, causal)
and a position-wise GRN follow, each gated, added and normalised; the decoder's steps go to
the head (point, quantiles or a distribution). The VSNs' softmax weights are the variable
importances (:meth:`TFT.importances`). Each block is one layer
(:mod:`deepcast.forecasting.tft_layers`): the graph stays small whatever the inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from deepcast.forecasting.base import EpochHook, TrainingData, TrainSettings
from deepcast.forecasting.keras_model import KerasForecaster, KerasOptions, NetworkInputs
from deepcast.forecasting.registry import register_family


class TFTOptions(KerasOptions):
    hidden_size: int = Field(128, ge=4, description="Width of every TFT layer (d_model).")
    heads: int = Field(4, ge=1, description="Attention heads (must divide hidden_size).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout in the GRNs and gates.")

    @model_validator(mode="after")
    def _heads_divide(self) -> TFTOptions:
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by heads "
                             f"({self.heads})")
        return self


@register_family("tft")
class TFT(KerasForecaster):
    """Variable selection, static encoders, LSTM encoder-decoder and interpretable
    attention: accurate and explainable."""

    Options = TFTOptions
    #: the VSNs whose weights are the variable importances
    SELECTIONS = ("static", "history", "future")
    variable_importances: dict[str, list[float]] | None = None  # measured after fit

    def forward(self, p: NetworkInputs):
        import keras
        from keras import ops

        from deepcast.forecasting.layers import InterpretableAttention, PositionalEncoding

        d, L, H = int(self.options["hidden_size"]), self.spec.lookback, self.spec.horizon
        ctx = [None] * 4
        if p.static:
            static, _ = self._select([s[:, None, :] for s in p.static], "static")
            static = static[:, 0, :]
            ctx = [self._grn(static, f"static_{k}") for k in ("select", "enrich", "h", "c")]
        history = [p.values, p.mask, *(_split(c) for c in p.channels)]
        hist, _ = self._select(_flat(history), "history", ctx[0])
        if p.future is not None:
            fut, _ = self._select(_split(p.future), "future", ctx[0])
        else:  # no known inputs ahead: the decoder reads learned step positions
            zeros = ops.repeat(ops.zeros_like(hist[:, :1, :]), H, axis=1)
            fut = PositionalEncoding("learned", name="horizon_positions")(zeros)
        state = [ctx[2], ctx[3]] if p.static else None
        enc, h, c = keras.layers.LSTM(d, return_sequences=True, return_state=True,
                                      name="encoder")(hist, initial_state=state)
        dec = keras.layers.LSTM(d, return_sequences=True, name="decoder")(
            fut, initial_state=[h, c])
        selected = keras.layers.Concatenate(axis=1, name="selected")([hist, fut])
        lstm = keras.layers.Concatenate(axis=1, name="lstm")([enc, dec])
        temporal = self._gate_add_norm(lstm, selected, "lstm_gate")
        enriched = self._grn(temporal, "enrichment", ctx[1])
        # from here on only the decoder steps, which the head reads (as neuralforecast's
        # TFT): attention's keys and values still span every step
        attn = InterpretableAttention(int(self.options["heads"]), d, last=H, name="attention",
                                      dtype="float32")(enriched)
        attn = self._gate_add_norm(attn, _decoder_steps(enriched, L, "enriched"),
                                   "attention_gate")
        out = self._gate_add_norm(self._grn(attn, "positionwise"),
                                  _decoder_steps(temporal, L, "temporal"), "output_gate")
        head = keras.layers.Dense(self.n_outputs, name="head", dtype="float32")(out)
        return self.finish(head)

    # -- building blocks ------------------------------------------------------------------
    def _grn(self, x, name: str, context=None, out: int | None = None):
        """Gated residual network (one layer: :class:`GatedResidual`)."""
        from deepcast.forecasting.tft_layers import GatedResidual

        d = int(self.options["hidden_size"])
        return GatedResidual(out or d, d, float(self.options["dropout"]), name=name)(
            x if context is None else [x, context])

    def _gate_add_norm(self, x, skip, name: str):
        """Dropout, a gated linear unit, the skip connection added, layer norm."""
        from deepcast.forecasting.tft_layers import GateAddNorm

        return GateAddNorm(int(self.options["hidden_size"]), float(self.options["dropout"]),
                           name=name)([x, skip])

    def _select(self, variables: list, name: str, context=None):
        """Variable selection network over (batch, T, width) variables: (batch, T, d)
        and the (batch, T, n) softmax weights (None for a single variable). Every
        variable is embedded and put through a GRN of its own (all in one
        :class:`ScalarSelection` where each is a single column)."""
        import keras
        from keras import ops

        from deepcast.forecasting.tft_layers import ScalarSelection, VariableGRN

        d, n = int(self.options["hidden_size"]), len(variables)
        rate = float(self.options["dropout"])
        if all(int(v.shape[-1]) == 1 for v in variables):
            columns = variables[0] if n == 1 else keras.layers.Concatenate(
                axis=-1, name=f"{name}_inputs")(variables)
            selected, weights = ScalarSelection(d, rate, name=f"{name}_selection")(
                columns if context is None else [columns, context])
            return selected, None if n == 1 else weights
        embedded = ops.stack([keras.layers.Dense(d, name=f"{name}_embed_{i}")(v)
                              for i, v in enumerate(variables)], axis=-2)
        processed = VariableGRN(d, rate, name=f"{name}_vars")(embedded)
        if n == 1:
            return processed[..., 0, :], None
        flat = keras.layers.Reshape((int(embedded.shape[1]), n * d), name=f"{name}_flat")(
            embedded)
        weights = keras.layers.Softmax(axis=-1, name=f"{name}_weights")(
            self._grn(flat, f"{name}_selection", context, out=n))
        return ops.sum(processed * weights[..., None], axis=-2), weights

    # -- explanation ----------------------------------------------------------------------
    def fit(self, data: TrainingData, settings: TrainSettings, on_epoch: EpochHook | None = None,
            checkpoint_dir: str | Path | None = None) -> dict[str, list[float]]:
        """Fit, then measure the variable importances on (up to 2,048 of) its training
        windows."""
        history = super().fit(data, settings, on_epoch, checkpoint_dir)
        from deepcast.features.windows import window_inputs

        if data.stream is not None:  # the panel is elsewhere: a sample of its windows
            inputs = dict(data.stream.epoch(settings.seed, 0, min(data.n_train, 2048)).inputs)
        else:
            starts = data.train_starts[np.linspace(0, len(data.train_starts) - 1, min(
                len(data.train_starts), 2048)).astype(int)]
            inputs = window_inputs(data.values, starts, self.spec.lookback, self.spec.horizon,
                                   data.covariates, data.offsets)
        self.variable_importances = self.importances(inputs.pop("y")[..., 0], inputs)
        return history

    def importances(self, x: np.ndarray, covariates: dict[str, Any] | None = None
                    ) -> dict[str, list[float]]:
        """Mean selection weight of each input variable over the windows ``x`` (and every
        time step), per selection network, in the order of :func:`importance_labels`."""
        import keras

        from deepcast.forecasting.tft_layers import ScalarSelection

        outputs, layers = {}, {layer.name: layer for layer in self.model.layers}
        for s in self.SELECTIONS:
            scalar = layers.get(f"{s}_selection")
            if f"{s}_weights" in layers:  # a Softmax after the selection GRN
                outputs[s] = layers[f"{s}_weights"].output
            elif isinstance(scalar, ScalarSelection) and scalar.chooses:
                outputs[s] = scalar.output[1]
        if not outputs:
            return {}
        probe = keras.Model(self.model.inputs, list(outputs.values()))
        out = probe.predict_on_batch(self.feeds(x, covariates))
        out = out if isinstance(out, list | tuple) else [out]
        return {s: np.asarray(w).mean(axis=(0, 1)).tolist()
                for s, w in zip(outputs, out, strict=True)}


def importance_labels(past: tuple[str, ...], future: tuple[str, ...],
                      static_numeric: bool, static_categorical: bool, series_id: bool
                      ) -> dict[str, list[str]]:
    """The variables each selection network weighs, in its order: ``history`` (the target,
    its observed mask, past covariates, the future covariates' known past), ``future``
    (future covariates over the horizon), ``static`` (numeric statics, categorical
    statics and the series ID, each as one group)."""
    static = (["static numeric"] * static_numeric + ["static categorical"] * static_categorical
              + ["series id"] * series_id)
    return {"history": ["target", "observed", *past, *future], "future": list(future),
            "static": static}


def _decoder_steps(x, lookback: int, name: str):
    """The horizon's steps of a (batch, lookback + horizon, d) sequence."""
    import keras

    return keras.layers.Cropping1D((lookback, 0), name=f"decoder_{name}")(x)


def _split(x) -> list:
    """(batch, T, k) -> k variables of (batch, T, 1)."""
    return [x[..., i : i + 1] for i in range(int(x.shape[-1]))]


def _flat(items: list) -> list:
    return [v for item in items for v in (item if isinstance(item, list) else [item])]
