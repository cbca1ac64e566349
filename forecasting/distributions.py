"""Distribution heads (``distribution:`` on a neural family): the network emits the
parameters of a distribution per horizon step, is trained on its negative log-likelihood,
and forecasts its quantiles (``yhat`` = the median).

The parameters live in the space the network sees (per-series scaled, instance-normed):
a location-scale distribution maps back exactly (loc * s + m, scale * s), so the quantiles
are computed after the instance norm is undone, and the per-series scaler and target
transform, both monotone, carry them to the data's units like any quantile.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from deepcast.forecasting.base import COUNT_DISTRIBUTIONS
from deepcast.forecasting.layers import PACKAGE

#: parameters per horizon step: normal (loc, scale), Student's t (loc, scale, df),
#: Poisson (rate), negative binomial (mean, dispersion alpha: variance mu + alpha mu^2)
N_PARAMS = {"normal": 2, "studentt": 3, "poisson": 1, "negbin": 2}
COUNTS = COUNT_DISTRIBUTIONS
_MIN_SCALE = 1e-4


@keras.saving.register_keras_serializable(package=PACKAGE)
class DistributionParams(keras.layers.Layer):
    """Raw head outputs (batch, horizon, k) -> valid parameters: the scale through a
    softplus (positive), Student's t degrees of freedom 2 + softplus (finite variance)."""

    def __init__(self, kind: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind = kind

    def call(self, raw):
        if self.kind in COUNTS:  # every parameter positive
            return ops.softplus(raw) + _MIN_SCALE
        loc = raw[..., :1]
        scale = ops.softplus(raw[..., 1:2]) + _MIN_SCALE
        parts = [loc, scale]
        if self.kind == "studentt":
            parts.append(2.0 + ops.softplus(raw[..., 2:3]))
        return ops.concatenate(parts, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package=PACKAGE)
class NegativeLogLikelihood(keras.losses.Loss):
    """Mean negative log-likelihood of y under the predicted (batch, horizon, k) parameters."""

    def __init__(self, kind: str = "normal", name: str = "nll", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.kind = kind

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, y_pred.dtype)
        if self.kind == "poisson":
            rate = y_pred[..., 0]
            return ops.mean(rate - y * ops.log(rate) + _lgamma(y + 1.0), axis=-1)
        if self.kind == "negbin":
            mu, alpha = y_pred[..., 0], y_pred[..., 1]
            r = 1.0 / alpha
            nll = (-_lgamma(y + r) + _lgamma(y + 1.0) + _lgamma(r)
                   + r * ops.log1p(alpha * mu) - y * (ops.log(alpha * mu)
                                                      - ops.log1p(alpha * mu)))
            return ops.mean(nll, axis=-1)
        loc, scale = y_pred[..., 0], y_pred[..., 1]
        z = (y - loc) / scale
        if self.kind == "normal":
            nll = 0.5 * ops.square(z) + ops.log(scale) + 0.5 * math.log(2 * math.pi)
        else:
            df = y_pred[..., 2]
            nll = (-_lgamma((df + 1.0) / 2.0) + _lgamma(df / 2.0)
                   + 0.5 * ops.log(df * math.pi) + ops.log(scale)
                   + (df + 1.0) / 2.0 * ops.log1p(ops.square(z) / df))
        return ops.mean(nll, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind}


def _lgamma(x):
    """log Gamma(x) for x > 0 (Stirling's series after shifting x up by 6; error < 1e-8),
    written with keras ops so every backend differentiates it."""
    shift = ops.log(x * (x + 1) * (x + 2) * (x + 3) * (x + 4) * (x + 5))
    y = x + 6.0
    inv = 1.0 / y
    series = inv * (1 / 12 - inv * inv * (1 / 360 - inv * inv / 1260))
    return (y - 0.5) * ops.log(y) - y + 0.5 * math.log(2 * math.pi) + series - shift


def quantiles_of(kind: str, params: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """(n, horizon, k) parameters -> (n, horizon, len(levels)) quantiles (whole counts
    for the count families)."""
    from scipy import stats

    q = np.asarray(levels, dtype=np.float64)
    first = params[..., :1].astype(np.float64)
    if kind == "poisson":
        return stats.poisson.ppf(q, first)
    if kind == "negbin":
        alpha = params[..., 1:2].astype(np.float64)
        return stats.nbinom.ppf(q, 1.0 / alpha, 1.0 / (1.0 + alpha * first))
    loc, scale = first, params[..., 1:2].astype(np.float64)
    if kind == "normal":
        return loc + scale * stats.norm.ppf(q)
    return loc + scale * stats.t.ppf(q, params[..., 2:3].astype(np.float64))


def sample(kind: str, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of (n, k) parameters (the parameter layout of :data:`N_PARAMS`)."""
    p = params.astype(np.float64)
    if kind == "poisson":
        return rng.poisson(p[:, 0]).astype(np.float64)
    if kind == "negbin":
        alpha = p[:, 1]
        return rng.negative_binomial(1.0 / alpha, 1.0 / (1.0 + alpha * p[:, 0])
                                     ).astype(np.float64)
    noise = (rng.standard_normal(len(p)) if kind == "normal"
             else rng.standard_t(p[:, 2]))
    return p[:, 0] + p[:, 1] * noise


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanScale(keras.layers.Layer):
    """Count heads' input scaling: ``[values, mask]`` -> (values / s, 0, s) with s the mean
    observed value of the window, at least 1 (the shapes of :class:`InstanceNorm`'s
    output, so :class:`InstanceDenorm` with kind ``count`` undoes it)."""

    def call(self, inputs):
        x, mask = inputs
        count = ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        s = ops.maximum(ops.sum(ops.abs(x) * mask, axis=1, keepdims=True) / count, 1.0)
        return x / s * mask, ops.zeros_like(s), s
