"""Warm start's pure core: the embedding rows of a grown series vocabulary, the layer-by-layer
weight copy into a new network (and its refusals), and why two models cannot share weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from deepcast.forecasting.base import InputSpec, WindowSpec
from deepcast.forecasting.warm import (
    SERIES_EMBEDDING,
    WarmStart,
    extend_rows,
    id_rows,
    incompatibility,
)


def test_id_rows_map_new_codes_to_the_sources_and_mark_new_series():
    old = {"a": 1, "b": 2, "c": 3}
    new = {"b": 1, "c": 2, "d": 3, "a": 4}  # re-coded, one new series
    np.testing.assert_array_equal(id_rows(old, new), [0, 2, 3, -1, 1])


def test_extend_rows_copies_known_rows_and_starts_new_ones_at_the_learned_mean():
    table = np.array([[9.0, 9.0], [1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    out = extend_rows(table, np.array([0, 2, -1, 1]))
    # row 0 (unseen code) is kept; the mean leaves the unseen row out
    np.testing.assert_allclose(out, [[9, 9], [3, 6], [2, 4], [1, 2]])
    assert out.dtype == np.float32


def _net(n_series: int, width: int = 3, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    ids = keras.Input((1,), dtype="int32")
    x = keras.Input((4,))
    emb = keras.layers.Flatten()(keras.layers.Embedding(n_series, 2,
                                                        name=SERIES_EMBEDDING)(ids))
    h = keras.layers.Dense(width, name="hidden")(keras.layers.Concatenate()([x, emb]))
    return keras.Model([ids, x], keras.layers.Dense(1, name="out")(h))


def test_apply_copies_every_weight_and_extends_the_id_embedding():
    source, target = _net(3, seed=1), _net(4, seed=2)  # one series more tonight
    rows = np.array([0, 2, 1, -1])
    warm = WarmStart(source, 5, "champion v3", rows)
    table = source.get_layer(SERIES_EMBEDDING).get_weights()[0]
    want = [w.copy() for w in source.get_layer("hidden").get_weights()]
    assert warm.apply(target)
    assert warm.applied and warm.note == "warm start from champion v3"
    assert warm.source is None  # let go once applied
    for got, w in zip(target.get_layer("hidden").get_weights(), want, strict=True):
        np.testing.assert_array_equal(got, w)
    np.testing.assert_allclose(target.get_layer(SERIES_EMBEDDING).get_weights()[0],
                               extend_rows(table, rows))


def test_apply_pairs_layers_by_name_when_their_order_changed():
    import keras

    def net(first: str, seed: int):  # two parallel layers, joined in either order
        keras.utils.set_random_seed(seed)
        x = keras.Input((4,))
        made = {}
        for name in (first, "b" if first == "a" else "a"):
            made[name] = keras.layers.Dense(3 if name == "a" else 5, name=name)(x)
        return keras.Model(x, keras.layers.Concatenate()(list(made.values())))

    source, target = net("a", 1), net("b", 2)
    assert [layer.name for layer in source.layers if layer.weights] != \
        [layer.name for layer in target.layers if layer.weights]
    assert WarmStart(source, 5, "v1").apply(target)
    for name in ("a", "b"):
        for got, w in zip(target.get_layer(name).get_weights(),
                          source.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, w)


def test_apply_refuses_a_different_network_and_leaves_it_untouched():
    source, target = _net(3, width=3), _net(3, width=5, seed=4)
    before = [w.copy() for w in target.get_weights()]
    warm = WarmStart(source, 5, "v1")
    assert not warm.apply(target)
    assert not warm.applied and warm.note.startswith("cold start: layer 'hidden'")
    for got, w in zip(target.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, w)
    cold = WarmStart.cold("v1", "no 'champion' version yet")
    assert not cold.apply(target) and cold.note == "cold start: no 'champion' version yet"


def _predictor(family="mlp", options=None, lookback=24, n_past=0, vocab=None,
               method="standard"):
    inputs = InputSpec(n_past=n_past, n_series=5, id_embedding=2)
    forecaster = SimpleNamespace(model=object(), family=family, name=family,
                                 options=options or {"hidden_size": 16},
                                 spec=WindowSpec(lookback, 6, 12), inputs=inputs)
    encoder = SimpleNamespace(spec=("kind",), vocab={"kind": vocab or {"x": 1, "y": 2}})
    return SimpleNamespace(forecaster=forecaster, encoder=encoder,
                           scaler=SimpleNamespace(method=method, target_transform="none"))


def _why(old, **new):
    tonight = _predictor(**new)
    tonight.forecaster.inputs = InputSpec(n_past=tonight.forecaster.inputs.n_past,
                                          n_series=9, id_embedding=2)  # more series: fine
    return incompatibility(old, tonight.forecaster, tonight.encoder, tonight.scaler)


@pytest.mark.parametrize(("change", "why"), [
    ({}, None),
    ({"family": "tide"}, "the family changed (mlp -> tide)"),
    ({"options": {"hidden_size": 32}}, "options changed: hidden_size 16 -> 32"),
    ({"lookback": 36}, "the windows changed (lookback 24, horizon 6 -> lookback 36, "
                       "horizon 6)"),
    ({"n_past": 1}, "the covariate inputs changed"),
    ({"vocab": {"x": 1, "y": 2, "z": 3}}, "new categories of 'kind': z"),
    ({"method": "robust"}, "the scaling changed (scaler standard, target_transform none "
                           "-> scaler robust, target_transform none)"),
])
def test_incompatibility_names_what_changed(change, why):
    assert _why(_predictor(), **change) == why


def test_a_source_without_a_network_cannot_start_one():
    old = _predictor()
    old.forecaster.model = None
    assert "has no network weights" in _why(old)


def test_a_warm_fit_never_ends_worse_than_its_start_weights():
    """The start weights' validation loss is the score to beat: a fit whose every epoch is
    worse (a learning rate far too high) keeps them, and its note says so; a sane fit
    trains on."""
    from deepcast.forecasting.base import TrainSettings
    from deepcast.forecasting.models import build_forecaster
    from tests.unit.test_models import SPEC, _tiny_data, _x

    data = _tiny_data()
    source = build_forecaster("mlp", "mlp", SPEC, {"hidden_size": 8})
    source.fit(data, TrainSettings(max_epochs=4, batch_size=32, seed=0, learning_rate=1e-2))
    x = _x(data.values)
    outcomes = {}
    for lr in (50.0, 1e-3):
        f = build_forecaster("mlp", "mlp", SPEC, {"hidden_size": 8})
        f.warm_start = WarmStart(source.model, 2, "v1")
        history = f.fit(data, TrainSettings(max_epochs=4, batch_size=32, seed=0,
                                            learning_rate=lr))
        outcomes[lr] = (f, history)
    wild, history = outcomes[50.0]
    assert len(history["loss"]) == 2  # it did train: the epochs were just worse
    assert min(history["val_loss"]) > 0  # and their losses are reported as they were
    assert wild.warm_start.note.startswith("warm start from v1; no epoch beat the start")
    np.testing.assert_allclose(wild.predict(x), source.predict(x), rtol=1e-5, atol=1e-6)
    sane, _ = outcomes[1e-3]
    assert sane.warm_start.note == "warm start from v1"
    assert not np.allclose(sane.predict(x), source.predict(x))


def test_a_warm_fit_passes_over_the_windows_without_the_small_panel_floor():
    """training.min_steps_per_epoch is a budget for a fit from scratch: a warm fit's
    warm_start_epochs are passes over tonight's windows (330 at batch 32: 11 steps each),
    while a cold start of the same settings gets the floor (25 steps an epoch)."""
    from deepcast.forecasting.base import TrainSettings
    from deepcast.forecasting.models import build_forecaster
    from tests.unit.test_models import SPEC, _tiny_data

    data = _tiny_data()
    settings = TrainSettings(max_epochs=3, patience=5, batch_size=32, seed=0,
                             min_steps_per_epoch=25)
    source = build_forecaster("mlp", "mlp", SPEC, {"hidden_size": 8})
    source.fit(data, settings)
    assert int(source.model.optimizer.iterations) == 3 * 25
    warm = build_forecaster("mlp", "mlp", SPEC, {"hidden_size": 8})
    warm.warm_start = WarmStart(source.model, 2, "v1")
    assert len(warm.fit(data, settings)["loss"]) == 2
    assert int(warm.model.optimizer.iterations) == 2 * 11
    cold = build_forecaster("mlp", "mlp", SPEC, {"hidden_size": 8})
    cold.warm_start = WarmStart(None, 2, "v1", note="cold start: no champion")
    cold.fit(data, settings)
    assert int(cold.model.optimizer.iterations) == 3 * 25


def test_a_warm_start_of_no_epochs_is_the_source_used_as_it_is():
    """A warm night's selection fit (warm_start_selection_epochs: 0): the source's weights,
    untrained and uncompiled, forecast exactly as the source does; the note says so."""
    from deepcast.forecasting.base import TrainSettings
    from deepcast.forecasting.models import build_forecaster
    from tests.unit.test_models import SPEC, _tiny_data, _x

    data = _tiny_data()
    settings = TrainSettings(max_epochs=3, batch_size=32, seed=0)
    source = build_forecaster("mlp", "mlp", SPEC, {"hidden_size": 8})
    source.fit(data, settings)
    reused = build_forecaster("mlp", "mlp", SPEC, {"hidden_size": 8})
    reused.warm_start = WarmStart(source.model, 0, "v1's selection fit")
    history = reused.fit(data, settings)
    assert history == {} and not reused.model.compiled  # nothing trained or compiled
    assert reused.warm_start.note == "warm start from v1's selection fit, used as it is " \
        "(no epochs)"
    x = _x(data.values)
    np.testing.assert_array_equal(reused.predict(x), source.predict(x))


def test_a_selection_fit_is_used_untrained_a_bounded_number_of_nights():
    """Its saved record counts the nights it was used as it is; after cold_every - 1 of
    them it trains warm_start_epochs again (the champion may stay for weeks); with
    cold_every: null, or a number of epochs configured, it always trains."""
    import pandas as pd

    from deepcast.pipelines.warm_start import (
        REUSED,
        WarmSource,
        new_points,
        selection_epochs,
        selection_record,
    )

    def source(selection=0, limit=6):
        return WarmSource("champion", "3", "run", {}, 5, {}, selection, limit, 28)

    assert [selection_epochs(source(), {REUSED: n}, 1) for n in (0, 5, 6, 9)] == [0, 0, 5, 5]
    assert selection_epochs(source(), {}, 1) == 0  # a fit trained last night
    # the same champion for weeks: its run's record never counts up, its age in points does
    assert selection_epochs(source(), {REUSED: 1}, 28) == 0
    assert selection_epochs(source(), {REUSED: 1}, 29) == 5
    assert selection_epochs(source(limit=0), {}, 1) == 5  # cold_every: null
    assert selection_epochs(source(selection=2), {REUSED: 0}, 1) == 2
    days = pd.date_range("2014-01-01", periods=10, freq="D")
    frame = pd.DataFrame({"unique_id": ["a"] * 10 + ["b"] * 10 + ["c"] * 10,
                          "ds": list(days) * 3})
    trained = {"ids": ["a", "b", "z"], "ds": ["2014-01-07T00:00:00", "2014-01-05T00:00:00",
                                              "2014-01-01T00:00:00"]}
    assert new_points(trained, frame) == 4  # median of a's 3 and b's 5; c, z not shared

    df = pd.DataFrame({"unique_id": ["a", "a", "b"], "ds": [1, 2, 2]})
    record = {"ids": ["a", "b"], "ds": [1, 1], REUSED: 2}
    used = WarmStart(None, 0, "v3's selection fit", applied=True, seen=record)
    predictor = SimpleNamespace(forecaster=SimpleNamespace(warm_start=used))
    assert selection_record(predictor, df) == {**record, REUSED: 3}  # not tonight's data
    predictor.forecaster.warm_start = WarmStart(None, 5, "v3", applied=True)
    assert selection_record(predictor, df) == {"ids": ["a", "b"], "ds": [2, 2]}
