"""The Temporal Fusion Transformer's building blocks (Lim et al. 2021, eq. 2-5), each one
Keras layer: a gated residual network (GRN), the gate-add-norm that joins two paths, and
the per-variable embeddings and GRNs of the variable selection networks, which run every
variable's own weights in one set of ops. Built from ten-odd stock layers per block (and
per input variable), a small TFT had ~190 layers and spent most of a short fit tracing
its graph; as blocks it has a few dozen, with the same parameters and the same maths.

Registered for ``safe_mode=True`` loading like :mod:`deepcast.forecasting.layers`.
"""

from __future__ import annotations

import keras
from keras import ops

from deepcast.forecasting.layers import PACKAGE, hashed_dropout

_EPSILON = 1e-3  # keras.layers.LayerNormalization's


def _weights(layer: keras.layers.Layer, name: str, shape: tuple[int, ...], bias: bool = True,
             variables: int = 1) -> tuple:
    """A Glorot-uniform kernel (per variable when ``variables`` > 1: the initialisation
    that many separate Dense layers would get) and a zero bias (None without)."""
    init = keras.initializers.VarianceScaling(float(variables), "fan_avg", "uniform")
    kernel = layer.add_weight(shape=shape, name=f"{name}_kernel", initializer=init)
    if not bias:
        return kernel, None
    return kernel, layer.add_weight(shape=(*shape[:-2], shape[-1]), name=f"{name}_bias",
                                    initializer="zeros")


def _dense(x, weights: tuple):
    """x W + b; with (n, i, o) weights each of the n variables on axis -2 of a
    (batch, T, n, i) input has its own: one batched matmul with the variables leading
    (an einsum over the trailing axes ran as many tiny matmuls, 2x slower per step)."""
    kernel, bias = weights
    if len(kernel.shape) == 2:
        y = ops.matmul(x, kernel)
    else:
        steps, n, width = x.shape[1], kernel.shape[0], kernel.shape[2]
        lead = ops.reshape(ops.transpose(x, (2, 0, 1, 3)), (n, -1, x.shape[-1]))
        y = ops.transpose(ops.reshape(ops.matmul(lead, kernel), (n, -1, steps, width)),
                          (1, 2, 0, 3))
    return y if bias is None else y + bias


def _affine(x, weights: tuple):
    """x W + b for (i, o) weights, or per variable for (n, i, o) ones on an (n, rows, i)
    input (the variables leading, as :class:`ScalarSelection` keeps them)."""
    kernel, bias = weights
    y = ops.matmul(x, kernel)
    return y + (bias[:, None, :] if len(kernel.shape) == 3 else bias)


def _glu_add_norm(x, skip, gate: tuple, value: tuple, gamma, beta, dense=_affine):
    """LayerNorm(skip + sigmoid(x Wg) * (x Wv)) over the last axis (Keras' epsilon), the
    products by ``dense`` (:func:`_dense` or :func:`_affine`, for the layout at hand)."""
    h = skip + ops.sigmoid(dense(x, gate)) * dense(x, value)
    mean, var = ops.mean(h, axis=-1, keepdims=True), ops.var(h, axis=-1, keepdims=True)
    return (h - mean) * ops.rsqrt(var + _EPSILON) * gamma + beta


class _Gated(keras.layers.Layer):
    """Shared tail: dropout, a gated linear unit, the skip added, layer norm."""

    def __init__(self, units: int, dropout: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units, self.rate = int(units), float(dropout)
        self.seed_generator = keras.random.SeedGenerator() if self.rate else None

    def _build_gate(self, width: int, variables: int = 1) -> None:
        lead = (variables,) if variables > 1 else ()
        self.gate = _weights(self, "gate", (*lead, width, self.units), variables=variables)
        self.value = _weights(self, "value", (*lead, width, self.units), variables=variables)
        self.gamma = self.add_weight(shape=(*lead, self.units), name="gamma",
                                     initializer="ones")
        self.beta = self.add_weight(shape=(*lead, self.units), name="beta",
                                    initializer="zeros")

    def _dropout(self, x, training):
        """Dropout at the layer's rate while training (a hashed mask)."""
        return hashed_dropout(x, self.rate, self.seed_generator) if training and self.rate \
            else x

    def _gate_add_norm(self, x, skip, training):
        return _glu_add_norm(self._dropout(x, training), skip, self.gate, self.value,
                             self.gamma, self.beta, _dense)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "dropout": self.rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GateAddNorm(_Gated):
    """``[x, skip]`` -> LayerNorm(skip + GLU(dropout(x))) with ``units`` outputs."""

    def build(self, input_shape) -> None:
        self._build_gate(int(input_shape[0][-1]))

    def call(self, inputs, training=False):
        x, skip = inputs
        return self._gate_add_norm(x, skip, training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[1][:-1], self.units)


@keras.saving.register_keras_serializable(package=PACKAGE)
class GatedResidual(_Gated):
    """A GRN, ``x`` or ``[x, context]`` -> ``units`` outputs: ELU(x W1 + c Wc + b1) W2 +
    b2, then gate-add-norm over the input (projected when its width differs). A static
    context (batch, c) is added at every time step of a (batch, T, i) input."""

    def __init__(self, units: int, hidden: int, dropout: float = 0.0, **kwargs) -> None:
        super().__init__(units, dropout, **kwargs)
        self.hidden = int(hidden)

    def build(self, input_shape) -> None:
        shapes = input_shape if isinstance(input_shape[0], list | tuple) else [input_shape]
        width, d = int(shapes[0][-1]), self.hidden
        self.fc1 = _weights(self, "fc1", (width, d))
        self.context = (_weights(self, "context", (int(shapes[1][-1]), d), bias=False)
                        if len(shapes) > 1 else None)
        self.fc2 = _weights(self, "fc2", (d, d))
        self.skip = _weights(self, "skip", (width, self.units)) if width != self.units else None
        self._build_gate(d)

    def call(self, inputs, training=False):
        x, c = inputs if isinstance(inputs, list | tuple) else (inputs, None)
        h = _dense(x, self.fc1)
        if c is not None:
            c = _dense(c, self.context)
            h = h + (c[:, None, :] if len(h.shape) == 3 else c)
        h = _dense(ops.elu(h), self.fc2)
        skip = x if self.skip is None else _dense(x, self.skip)
        return self._gate_add_norm(h, skip, training)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], list | tuple) else input_shape
        return (*shape[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "hidden": self.hidden}


@keras.saving.register_keras_serializable(package=PACKAGE)
class VariableDense(keras.layers.Layer):
    """A dense layer per variable in one op: (..., n, i) -> (..., n, units), each variable
    with its own kernel and bias (the VSNs' per-variable embeddings of TFTs saved before
    :class:`ScalarSelection`; kept so that they load)."""

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape) -> None:
        n = int(input_shape[-2])
        self.dense = _weights(self, "dense", (n, int(input_shape[-1]), self.units),
                              variables=n)

    def call(self, x):
        return _dense(x, self.dense)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class VariableGRN(_Gated):
    """A GRN of its own for each of n variables in one set of ops: (..., n, d) ->
    (..., n, d), the input as the skip, a layer norm with its own scale and offset each."""

    def build(self, input_shape) -> None:
        n, d = int(input_shape[-2]), int(input_shape[-1])
        self.fc1 = _weights(self, "fc1", (n, d, d), variables=n)
        self.fc2 = _weights(self, "fc2", (n, d, d), variables=n)
        self._build_gate(d, variables=n)

    def call(self, x, training=False):
        h = _dense(ops.elu(_dense(x, self.fc1)), self.fc2)
        return self._gate_add_norm(h, x, training)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScalarSelection(_Gated):
    """A variable selection network over n single-column variables, in one layer:
    ``x`` (batch, T, n) or ``[x, context]`` -> ``[selected (batch, T, units), weights
    (batch, T, n)]``: each variable embedded (x w_i + b_i), put through a GRN of its own,
    and weighted by a GRN over all the embeddings (softmax), as :class:`VariableDense`,
    :class:`VariableGRN` and a :class:`GatedResidual` compute it.

    Why one layer: an embedding of one column is rank one, so the first dense layer of
    each GRN, and of the selection GRN over all n embeddings (an (n d, d) kernel), folds
    onto it: (x w_i + b_i) W_i + c_i = x (w_i W_i) + (b_i W_i + c_i). The same function of
    the same weights, without the (rows, d) x (d, d) products: a TFT step went from ~21 to
    ~13 d-wide matrix products per history step. The variables stay leading throughout,
    with no transposes between the per-variable products."""

    def build(self, input_shape) -> None:
        shapes = input_shape if isinstance(input_shape[0], list | tuple) else [input_shape]
        n, d = int(shapes[0][-1]), self.units
        self.embed = _weights(self, "embed", (n, 1, d), variables=n)
        self.fc1 = _weights(self, "fc1", (n, d, d), variables=n)
        self.fc2 = _weights(self, "fc2", (n, d, d), variables=n)
        self._build_gate(d, variables=n)
        if n == 1:  # nothing to choose
            return
        self.select_fc1 = _weights(self, "select_fc1", (n * d, d))
        self.select_context = (_weights(self, "select_context", (int(shapes[1][-1]), d),
                                        bias=False) if len(shapes) > 1 else None)
        self.select_fc2 = _weights(self, "select_fc2", (d, d))
        self.select_skip = _weights(self, "select_skip", (n * d, n))
        self.select_gate = _weights(self, "select_gate", (d, n))
        self.select_value = _weights(self, "select_value", (d, n))
        self.select_gamma = self.add_weight(shape=(n,), name="select_gamma",
                                            initializer="ones")
        self.select_beta = self.add_weight(shape=(n,), name="select_beta",
                                           initializer="zeros")

    @property
    def chooses(self) -> bool:
        """Whether it weighs several variables (its second output is their weights)."""
        return hasattr(self, "select_fc1")

    def call(self, inputs, training=False):
        x, c = inputs if isinstance(inputs, list | tuple) else (inputs, None)
        n, d, steps = int(x.shape[-1]), self.units, int(x.shape[1])
        w, b = self.embed[0][:, 0, :], self.embed[1]
        cols = ops.transpose(ops.reshape(x, (-1, n)))[..., None]  # (n, rows, 1)
        embedded = cols * w[:, None, :] + b[:, None, :]
        k1, b1 = self.fc1
        h = cols * ops.einsum("nd,nde->ne", w, k1)[:, None, :] + (
            ops.einsum("nd,nde->ne", b, k1) + b1)[:, None, :]
        h = self._dropout(_affine(ops.elu(h), self.fc2), training)
        gamma, beta = ((v[:, None, :] if len(v.shape) == 2 else v)  # (n, d): per variable
                       for v in (self.gamma, self.beta))
        processed = _glu_add_norm(h, embedded, self.gate, self.value, gamma, beta)
        if n == 1:
            out = ops.reshape(processed[0], (-1, steps, d))
            return out, ops.ones_like(out[..., :1])
        weights = ops.softmax(self._selection(x, c, w, b, training), axis=-1)
        flat = ops.reshape(weights, (-1, n))
        out = ops.einsum("nrd,rn->rd", processed, flat)
        return ops.reshape(out, (-1, steps, d)), weights

    def _selection(self, x, c, w, b, training):
        """The selection GRN's logits (batch, T, n), its rank-one parts folded."""
        n, d = int(x.shape[-1]), self.units

        def fold(weights: tuple, width: int) -> tuple:
            kernel = ops.reshape(weights[0], (n, d, width))
            return (ops.einsum("nd,nde->ne", w, kernel),
                    ops.einsum("nd,nde->e", b, kernel) + weights[1])

        h = _affine(x, fold(self.select_fc1, d))
        if c is not None:
            h = h + ops.matmul(c, self.select_context[0])[:, None, :]
        h = self._dropout(_affine(ops.elu(h), self.select_fc2), training)
        return _glu_add_norm(h, _affine(x, fold(self.select_skip, n)), self.select_gate,
                             self.select_value, self.select_gamma, self.select_beta)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], list | tuple) else input_shape
        return (*shape[:-1], self.units), tuple(shape)
