"""Custom Keras layers, registered for safe (``safe_mode=True``) ``.keras`` loading."""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "deepcast"


@keras.saving.register_keras_serializable(package=PACKAGE)
class InstanceNorm(keras.layers.Layer):
    """Reversible instance normalisation (RevIN, without affine): each input window is
    shifted and scaled by its own mean and std; returns ``(normed, loc, scale)``."""

    def __init__(self, eps: float = 1e-5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.eps = eps

    def call(self, x):
        loc = ops.mean(x, axis=1, keepdims=True)
        scale = ops.sqrt(ops.var(x, axis=1, keepdims=True) + self.eps)
        return (x - loc) / scale, loc, scale

    def get_config(self) -> dict:
        return {**super().get_config(), "eps": self.eps}


@keras.saving.register_keras_serializable(package=PACKAGE)
class InstanceDenorm(keras.layers.Layer):
    """Undo :class:`InstanceNorm` on a (batch, horizon) forecast."""

    def call(self, inputs):
        y, loc, scale = inputs
        return y * scale[:, :, 0] + loc[:, :, 0]
