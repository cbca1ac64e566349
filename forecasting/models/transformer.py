"""``transformer``: PatchTST-style encoder (Nie et al. 2023). The lookback is cut into
overlapping patches, each patch embedded as a token with a positional encoding, passed
through pre-norm multi-head self-attention blocks, and the tokens are flattened into the
head."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from deepcast.forecasting.keras_model import KerasForecaster, KerasOptions
from deepcast.forecasting.registry import register_family


class TransformerOptions(KerasOptions):
    """Options of ``transformer``."""

    patch_len: int = Field(16, ge=1, description="Steps per patch (capped at the lookback).")
    stride: int = Field(8, ge=1, description="Steps between patch starts.")
    d_model: int = Field(64, ge=1, le=4096, description="Token width.")
    heads: int = Field(4, ge=1, le=64, description="Attention heads.")
    layers: int = Field(2, ge=1, le=16, description="Encoder blocks.")
    ff_dim: int = Field(128, ge=1, le=16384, description="Width of each block's MLP.")
    positional: Literal["learned", "sinusoidal"] = Field(
        "learned", description="Positional encoding of the patch tokens.")

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerOptions:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads "
                             f"({self.heads})")
        return self


@register_family("transformer")
class PatchTransformerForecaster(KerasForecaster):
    """Attention over patches: tokens carry local shape, attention relates distant ones."""

    Options = TransformerOptions

    def network(self, x):
        import keras

        from deepcast.forecasting.layers import Patches, PositionalEncoding

        o = self.options
        patch_len = min(int(o["patch_len"]), self.spec.lookback)
        d_model, heads = int(o["d_model"]), int(o["heads"])
        h = Patches(patch_len, int(o["stride"]), name="patches")(x)
        h = keras.layers.Dense(d_model, name="patch_embedding")(h)
        h = PositionalEncoding(o["positional"], name="position")(h)
        h = self.dropout(h, "embedding_dropout")
        for i in range(int(o["layers"])):
            a = keras.layers.LayerNormalization(name=f"block{i}_norm_attn")(h)
            a = keras.layers.MultiHeadAttention(heads, d_model // heads,
                                                dropout=float(o["dropout"]),
                                                name=f"block{i}_attention")(a, a)
            h = keras.layers.Add(name=f"block{i}_add_attn")([h, a])
            f = keras.layers.LayerNormalization(name=f"block{i}_norm_ff")(h)
            f = keras.layers.Dense(int(o["ff_dim"]), activation="gelu", name=f"block{i}_ff1")(f)
            f = self.dropout(f, f"block{i}_ff_dropout")
            f = keras.layers.Dense(d_model, name=f"block{i}_ff2")(f)
            h = keras.layers.Add(name=f"block{i}_add_ff")([h, f])
        h = keras.layers.LayerNormalization(name="final_norm")(h)
        return keras.layers.Flatten(name="flatten")(h)
