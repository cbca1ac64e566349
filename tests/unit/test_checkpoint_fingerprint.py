"""A checkpoint resumes only the same fit: other covariates or calendar features (other
inputs, other numbers) start afresh instead of resuming, or failing to load, old weights."""

import pytest

from deepcast.forecasting.checkpoint import TrainingCheckpoint
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.ingest import ingest
from deepcast.pipelines.modelling import fit_model, prepare, training_settings
from deepcast.pipelines.validate import validate_long_frame
from tests.conftest import DATA, pipeline_dict


class Stop(Exception):
    pass


@pytest.fixture
def restores(monkeypatch):
    """The number of times a checkpoint's weights were restored (a resume)."""
    calls = []
    restore = TrainingCheckpoint.restore_weights

    def spy(self, model, state):
        calls.append(state["epoch"])
        return restore(self, model, state)

    monkeypatch.setattr(TrainingCheckpoint, "restore_weights", spy)
    return calls


def _prepared(calendar="none", static=None):
    """A 3-epoch checkpointed mlp on the retail slice (datetime ds: calendar features) or,
    with ``static``, on the M3 slice with those static columns."""
    path = DATA / ("aus_retail_small.csv" if static is None else "m3_monthly_static.csv")
    raw = pipeline_dict(path, models=[{"type": "mlp", "hidden_size": 8}],
                        training={"max_epochs": 3, "patience": 10, "batch_size": 64,
                                  "seed": 0, "checkpoint": True,
                                  "checkpoint_every": 0})
    raw["features"]["calendar"] = calendar
    if static is not None:
        raw["data"] = {**raw["data"], "freq": 1, "static": static}
    cfg = parse_config(raw)
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    return cfg, prepare(clean, cfg)


def _stopped_after_one_epoch(cfg, prep, ckpt):
    def stop(epoch, logs):  # runs before epoch 1's checkpoint: epoch 0's is on disk
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        fit_model(cfg.models[0], prep, training_settings(cfg), stop, ckpt)
    assert (ckpt / "state.json").is_file()


def _fit(cfg, prep, ckpt):
    fit_model(cfg.models[0], prep, training_settings(cfg), checkpoint=ckpt)
    assert not ckpt.exists()  # finished: checkpoint removed


@pytest.mark.parametrize("before, after", [
    (["month"], ["quarter"]),  # same input shape, other numbers: resumed silently before
    (["month"], ["month", "quarter"]),  # other input shape: load_weights failed before
])
def test_other_calendar_features_start_a_fresh_fit(tmp_path, restores, before, after):
    ckpt = tmp_path / "ckpt"
    _stopped_after_one_epoch(*_prepared(before), ckpt)
    _fit(*_prepared(after), ckpt)
    assert restores == []


def test_same_inputs_still_resume(tmp_path, restores):
    ckpt = tmp_path / "ckpt"
    _stopped_after_one_epoch(*_prepared(["month"]), ckpt)
    _fit(*_prepared(["month"]), ckpt)
    assert restores == [1]


def test_other_covariates_start_a_fresh_fit(tmp_path, restores):
    """Adding a static covariate (a categorical embedding input) to an otherwise same fit."""
    ckpt = tmp_path / "ckpt"
    _stopped_after_one_epoch(*_prepared(static=[]), ckpt)
    cfg, prep = _prepared(static=["category"])
    assert prep.inputs.cardinalities
    _fit(cfg, prep, ckpt)
    assert restores == []


def test_a_checkpoint_of_other_layers_starts_afresh(tmp_path, caplog):
    """Same fingerprint, other layers (a checkpoint written by an earlier version of the
    family): nothing is resumed, the network keeps its own weights (Keras fails part-way
    through loading), and the log says why."""
    import keras
    import numpy as np

    def network(*widths):
        model = keras.Sequential([keras.Input((3,)), *[keras.layers.Dense(w) for w in widths]])
        model.compile("adam", "mse")
        return model

    old, new = network(4, 2), network(4, 5, 2)
    ckpt = TrainingCheckpoint(tmp_path, "same")
    ckpt.save(old, {"epoch": 1, "history": {}, "early_stopping": {}, "stopped": False},
              None)
    before = [np.asarray(v) for v in new.variables]
    assert ckpt.load_state() is not None
    with caplog.at_level("WARNING", logger="deepcast"):
        assert ckpt.restore(new) is None
    assert "another network's weights" in caplog.text
    for v, value in zip(new.variables, before, strict=True):
        np.testing.assert_array_equal(v, value)
    assert TrainingCheckpoint(tmp_path, "same").restore(network(4, 2)) is not None
