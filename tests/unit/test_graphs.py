"""A released model's traced graphs are reused by the next fit of the same network, and that
fit comes out bit-identical to one on a freshly built and compiled model (weights, loss
curves): the reused model is set to the fresh build's variables (dropout seed states too)
and its optimiser to its initial state."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deepcast.forecasting import graphs
from deepcast.forecasting.base import TrainSettings
from deepcast.forecasting.models import build_forecaster
from tests.unit.test_models import SPEC, _tiny_data

SETTINGS = TrainSettings(max_epochs=3, patience=3, batch_size=32, seed=0,
                         schedule="plateau")


def _fit(family: str, options: dict, data, settings=SETTINGS):
    f = build_forecaster(family, family, SPEC, options)
    history = f.fit(data, settings)
    return f, history


@pytest.mark.parametrize("family,options,xla", [
    ("mlp", {"hidden_size": 16, "dropout": 0.2}, False),
    ("mlp", {"hidden_size": 16, "dropout": 0.2}, True),
    ("nhits", {"hidden_size": 16}, False),
    ("transformer", {"d_model": 8, "heads": 2, "ff_dim": 8, "layers": 1, "dropout": 0.1},
     False),
])
def test_a_reused_graph_trains_exactly_as_a_fresh_model(family, options, xla):
    data = _tiny_data()
    other = replace(data, values=(data.values * 3.0 + 1.0).astype(np.float32))
    settings = replace(SETTINGS, jit_compile=xla)
    graphs.clear()
    fresh, fresh_history = _fit(family, options, data, settings)
    first, _ = _fit(family, options, other, settings)  # another fit of it (a selection fit)
    traced = first.model.train_function
    graphs.release(first.model)
    again, history = _fit(family, options, data, settings)
    assert again.model is first.model and again.model.train_function is traced  # no retrace
    assert history == fresh_history
    for a, b in zip(again.model.get_weights(), fresh.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(again.model.optimizer.iterations) == int(fresh.model.optimizer.iterations)


def test_only_a_released_model_of_the_same_network_and_settings_is_reused():
    data = _tiny_data()
    graphs.clear()
    first, _ = _fit("mlp", {"hidden_size": 16}, data)
    unreleased, _ = _fit("mlp", {"hidden_size": 16}, data)
    assert unreleased.model is not first.model  # still its owner's
    graphs.release(first.model)
    wider, _ = _fit("mlp", {"hidden_size": 32}, data)
    other_lr, _ = _fit("mlp", {"hidden_size": 16}, data, replace(SETTINGS, learning_rate=0.01))
    assert first.model not in (wider.model, other_lr.model)
    same, _ = _fit("mlp", {"hidden_size": 16}, data)
    assert same.model is first.model
    graphs.release(None)  # a forecaster without a network: nothing to release
    graphs.clear()
