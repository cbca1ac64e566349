"""Layers that make training cheaper without changing the model: the hashed dropout mask
(``hashed_dropout``: the rate it keeps, a new mask every step, reproducible from the seed,
the same under XLA as without, the layer's safe ``.keras`` round trip) and TiDE's mask
projection on the mask's two values (``BinaryLevels`` + ``PickLevel``: the same outputs and
gradients as the step-wise layers)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from deepcast.forecasting.layers import (  # noqa: E402
    BinaryLevels,
    HashDropout,
    PickLevel,
    hashed_dropout,
)


def masks(seed: int, calls: int, rate: float = 0.3) -> np.ndarray:
    gen = keras.random.SeedGenerator(seed)
    x = np.ones((64, 256), "float32")
    return np.stack([keras.ops.convert_to_numpy(hashed_dropout(x, rate, gen))
                     for _ in range(calls)])


def test_keeps_the_rate_and_the_mean():
    out = masks(0, 10)
    kept = out > 0
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)  # inverted dropout
    assert abs(out.mean() - 1.0) < 0.01


def test_new_mask_every_call_and_uncorrelated():
    kept = masks(0, 4) > 0
    for a, b in zip(kept[:-1], kept[1:], strict=True):
        assert not np.array_equal(a, b)
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.02
    # neighbouring elements are not correlated either (a counter hash could be)
    assert abs(np.corrcoef(kept[0][:, :-1].ravel(), kept[0][:, 1:].ravel())[0, 1]) < 0.02


def test_reproducible_from_the_seed():
    np.testing.assert_array_equal(masks(7, 3), masks(7, 3))
    assert not np.array_equal(masks(7, 1), masks(8, 1))


def test_same_masks_with_and_without_xla():
    tf = pytest.importorskip("tensorflow")
    x = tf.ones((32, 48))
    out = {}
    for jit in (False, True):
        gen = keras.random.SeedGenerator(3)
        step = tf.function(lambda v, g=gen: hashed_dropout(v, 0.25, g), jit_compile=jit)
        out[jit] = [step(x).numpy() for _ in range(2)]
    np.testing.assert_array_equal(out[False], out[True])


def test_layer_is_identity_at_inference_and_loads_safely(tmp_path):
    inputs = keras.Input((8,))
    model = keras.Model(inputs, HashDropout(0.5, name="drop")(keras.layers.Dense(4)(inputs)))
    x = np.random.default_rng(0).normal(size=(5, 8)).astype("float32")
    trained = keras.ops.convert_to_numpy(model(x, training=True))
    assert (trained == 0).any()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("drop"), HashDropout)
    assert loaded.get_layer("drop").rate == 0.5
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_picking_levels_equals_the_step_wise_layers_and_their_gradients():
    tf = pytest.importorskip("tensorflow")
    hidden = keras.layers.Dense(16, activation="relu")
    out = keras.layers.Dense(3)
    mask = tf.constant((np.random.default_rng(1).random((4, 9, 1)) > 0.3).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        stepwise = out(hidden(mask))
        picked = PickLevel()([mask, out(hidden(BinaryLevels()(mask)))])
        loss_a = tf.reduce_sum(stepwise * tf.range(27.0)[None, :, None][:, :9])
        loss_b = tf.reduce_sum(picked * tf.range(27.0)[None, :, None][:, :9])
    np.testing.assert_allclose(picked.numpy(), stepwise.numpy(), rtol=1e-6, atol=1e-6)
    weights = hidden.trainable_weights + out.trainable_weights
    for a, b in zip(tape.gradient(loss_a, weights), tape.gradient(loss_b, weights),
                    strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-5)
