"""TFT: variable selection weights that sum to one and are named after the inputs, the
option check, and the importances logged to the model's MLflow run."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.covariates import CovariateSpec
from deepcast.forecasting.base import WindowSpec
from deepcast.forecasting.models import build_forecaster
from deepcast.pipelines.artifacts import variable_importances
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.ingest import ingest
from deepcast.pipelines.tracking import Tracker
from deepcast.pipelines.train import train_models
from deepcast.pipelines.validate import validate_long_frame
from tests.conftest import mlflow_store, pipeline_dict
from tests.unit.test_covariates import _fit_with_covariates, _tiny

TINY = {"hidden_size": 8, "heads": 2}


def test_every_covariate_kind_is_used_and_weighed():
    """Past, future and static inputs all move the forecast; the importances are the
    selection weights, summing to one per network, named after the inputs."""
    df = _tiny().assign(temp=np.random.default_rng(1).normal(size=180))
    spec = CovariateSpec(static=("kind",), past=("temp",), future=("promo",),
                         categorical=("kind",), calendar=(), id_embedding=3)
    predictor = _fit_with_covariates(df, spec, "tft", options=TINY)
    assert predictor.forecaster.input_names == ["y", "past", "future", "static_cat", "series"]
    future = pd.DataFrame({"unique_id": np.repeat(["s0", "s1", "s2"], 4),
                           "ds": np.tile(np.arange(61, 65), 3), "promo": 0.0,
                           "kind": np.repeat(["even", "odd", "even"], 4)})
    frame = pd.concat([df, future.assign(y=np.nan)], ignore_index=True)
    fc = predictor.predict(frame)
    for column, rows, value in (("promo", frame["y"].isna(), 5.0),
                                ("temp", frame["ds"].between(50, 60), 3.0),
                                ("kind", frame["unique_id"] == "s0", "odd")):
        changed = frame.copy()
        changed.loc[rows, column] = value
        assert not np.allclose(predictor.predict(changed)["yhat"], fc["yhat"]), column
    table = variable_importances(predictor)
    assert set(table["network"]) == {"history", "static"}  # one future input: no choice
    history = table[table["network"] == "history"]
    assert history["variable"].tolist() == ["target", "observed", "temp", "promo"]
    for _, part in table.groupby("network"):
        assert part["importance"].sum() == pytest.approx(1.0, abs=1e-4)
        assert (part["importance"] > 0).all()
    static = table[table["network"] == "static"]["variable"].tolist()
    assert static == ["static categorical", "series id"]
    assert variable_importances(_fit_with_covariates(df, spec, "mlp")) is None


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="divisible by heads"):
        build_forecaster("tft", "t", WindowSpec(24, 6), {"hidden_size": 10, "heads": 4})


@pytest.mark.integration
def test_train_logs_the_importances_to_the_models_run(tmp_path, monkeypatch, retail_csv):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store(tmp_path / "mlflow.db"))
    monkeypatch.chdir(tmp_path)
    cfg = parse_config(pipeline_dict(retail_csv, name="it-tft",
                                     models=[{"type": "tft", **TINY}]))
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    tracker = Tracker(cfg.name)
    with tracker.run("train-it-tft"):
        outcome = train_models(clean, cfg, tracker, data_sha256="x")
    run_id = next(m.run_id for m in outcome.models if m.name == "tft")
    path = tracker.client.download_artifacts(run_id, "importances/variable_importances.csv",
                                           str(tmp_path))
    logged = pd.read_csv(path)
    assert logged.groupby("network")["importance"].sum().round(4).eq(1.0).all()
    assert logged[logged["network"] == "history"]["variable"].iloc[0] == "target"


def _layer_norm(h, gamma, beta):
    return (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-3) \
        * gamma + beta


def _glu_norm(layer, h, skip, i=None):
    """Reference gate-add-norm in numpy, for variable ``i`` of a per-variable layer."""
    w = {v.path.rsplit("/", 1)[-1]: np.asarray(v) for v in layer.weights}
    pick = (lambda a: a[i]) if i is not None else (lambda a: a)
    gate = 1 / (1 + np.exp(-(h @ pick(w["gate_kernel"]) + pick(w["gate_bias"]))))
    return _layer_norm(skip + gate * (h @ pick(w["value_kernel"]) + pick(w["value_bias"])),
                       pick(w["gamma"]), pick(w["beta"]))


def _elu(x):
    return np.where(x > 0, x, np.exp(np.minimum(x, 0)) - 1)


def test_blocks_compute_the_papers_grn_per_variable():
    """The one-layer blocks are the paper's GRN (eq. 2-5): each variable of a
    VariableGRN gets exactly what a GRN of its own would give, and a GatedResidual adds
    a static context at every step and projects its skip when the width changes."""
    from deepcast.forecasting.tft_layers import GatedResidual, VariableGRN

    x = np.random.default_rng(0).normal(size=(2, 5, 3, 4)).astype("float32")
    layer = VariableGRN(4, 0.1)
    out = np.asarray(layer(x))
    w = {v.path.rsplit("/", 1)[-1]: np.asarray(v) for v in layer.weights}
    for i in range(3):
        h = _elu(x[:, :, i] @ w["fc1_kernel"][i] + w["fc1_bias"][i])
        h = h @ w["fc2_kernel"][i] + w["fc2_bias"][i]
        np.testing.assert_allclose(out[:, :, i], _glu_norm(layer, h, x[:, :, i], i),
                                   rtol=1e-4, atol=1e-5)
    seq, ctx = x[:, :, 0], x[:, 0, 1, :2]
    grn = GatedResidual(3, 4)
    got = np.asarray(grn([seq, ctx]))
    w = {v.path.rsplit("/", 1)[-1]: np.asarray(v) for v in grn.weights}
    h = _elu(seq @ w["fc1_kernel"] + w["fc1_bias"] + (ctx @ w["context_kernel"])[:, None])
    h = h @ w["fc2_kernel"] + w["fc2_bias"]
    skip = seq @ w["skip_kernel"] + w["skip_bias"]
    np.testing.assert_allclose(got, _glu_norm(grn, h, skip), rtol=1e-4, atol=1e-5)


def _stock_selection(d: int, n: int):
    """The selection network as the separate blocks compute it (VariableDense, VariableGRN,
    a GatedResidual over the concatenated embeddings, softmax, weighted sum): a function
    of ``(x, context)`` and its blocks' variables under ScalarSelection's weight names."""
    from keras import ops

    from deepcast.forecasting.tft_layers import GatedResidual, VariableDense, VariableGRN

    embed, grn, select = VariableDense(d), VariableGRN(d), GatedResidual(n, d)

    def forward(x, context):
        embedded = embed(ops.expand_dims(x, -1))
        flat = ops.reshape(embedded, (*x.shape[:2], n * d))
        chosen = ops.softmax(select([flat, context] if context is not None else flat), -1)
        return ops.sum(grn(embedded) * chosen[..., None], axis=-2), chosen

    return forward, {"embed": embed, "": grn, "select_": select}


@pytest.mark.parametrize("with_context", [False, True])
def test_scalar_selection_is_the_blocks_folded(with_context):
    """ScalarSelection folds the embeddings into the GRNs' first layers: the same outputs
    and the same gradients as the separate blocks with the same weights."""
    import tensorflow as tf

    from deepcast.forecasting.tft_layers import ScalarSelection

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 5, 4)).astype("float32"))
    context = tf.constant(rng.normal(size=(3, 6)).astype("float32")) if with_context else None
    inputs = [x, context] if with_context else x
    layer = ScalarSelection(8)
    layer(inputs)
    stock, blocks = _stock_selection(8, 4)
    stock(x, context)
    stock_vars = {prefix + v.path.rsplit("/", 1)[-1].replace("dense_", "_"): v
                  for prefix, block in blocks.items() for v in block.weights}
    mine = {v.path.rsplit("/", 1)[-1]: v for v in layer.weights}
    assert set(mine) == set(stock_vars)
    for name, v in mine.items():  # the same weights, with non-trivial biases and norms
        v.assign(v + rng.normal(scale=0.3, size=v.shape).astype("float32"))
        stock_vars[name].assign(v)
    scale = tf.range(8, dtype="float32")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        got, chosen = layer(inputs)
        want, want_chosen = stock(x, context)
        loss_got, loss_want = tf.reduce_sum(got * scale), tf.reduce_sum(want * scale)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(chosen, want_chosen, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.sum(chosen, -1), 1.0, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(loss_got, x), tape.gradient(loss_want, x),
                               rtol=1e-3, atol=1e-4)
    for name, v in mine.items():
        np.testing.assert_allclose(tape.gradient(loss_got, v),
                                   tape.gradient(loss_want, stock_vars[name]), rtol=1e-3,
                                   atol=1e-4, err_msg=name)


def test_decoder_only_attention_is_the_last_rows_of_the_full_one():
    """Attention asked by the decoder steps only gives the rows the full attention gives
    them (keys and values from every step, causal)."""
    from deepcast.forecasting.layers import InterpretableAttention

    x = np.random.default_rng(1).normal(size=(2, 9, 8)).astype("float32")
    full, last = InterpretableAttention(2, 8), InterpretableAttention(2, 8, last=3)
    full(x), last(x)
    last.set_weights(full.get_weights())
    np.testing.assert_allclose(last(x), np.asarray(full(x))[:, -3:], rtol=1e-5, atol=1e-6)
    assert InterpretableAttention.from_config(last.get_config()).last == 3
