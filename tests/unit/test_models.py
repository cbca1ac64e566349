"""The model contract over every family: shapes, baselines by hand, save/load, seeds,
quantiles, checkpoint resume and the training-engine options."""

import numpy as np
import pytest

from deepcast.features.errors import RunFailed
from deepcast.features.windows import window_starts
from deepcast.forecasting.base import TrainingData, TrainSettings, WindowSpec
from deepcast.forecasting.models import build_forecaster, families, load_forecaster

SPEC = WindowSpec(24, 6, 12)
SMALL = {"lstm": {"units": 4}, "gru": {"units": 4}, "rnn": {"units": 4},
         "mlp": {"hidden_size": 16}, "cnn": {"filters": 4},
         "transformer": {"d_model": 8, "heads": 2, "ff_dim": 8, "layers": 1},
         "linear": {}, "nhits": {"hidden_size": 16}, "tide": {"hidden_size": 16},
         "nbeats": {"hidden_size": 16}, "tsmixer": {"ff_dim": 8},
         "deepar": {"hidden_size": 8, "layers": 1, "num_samples": 20},
         "tft": {"hidden_size": 8, "heads": 2}}


def test_baselines_by_hand():
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    spec = WindowSpec(lookback=6, horizon=5, season_length=3)
    assert build_forecaster("naive", "n", spec, {}).predict(x).tolist() == [[6.0] * 5]
    # last season is 4, 5, 6 -> repeated
    snaive = build_forecaster("seasonal_naive", "s", spec, {})
    assert snaive.predict(x).tolist() == [[4.0, 5.0, 6.0, 4.0, 5.0]]
    assert build_forecaster("mean", "m", spec, {}).predict(x).tolist() == [[3.5] * 5]
    # slope (6 - 1) / 5 = 1 per step
    assert build_forecaster("drift", "d", spec, {}).predict(x).tolist() == [
        [7.0, 8.0, 9.0, 10.0, 11.0]]


def test_unknown_family_and_bad_options():
    with pytest.raises(ValueError, match="known: .*lstm"):
        build_forecaster("nope", "n", WindowSpec(4, 2), {})
    with pytest.raises(ValueError, match="unitz"):
        build_forecaster("lstm", "n", WindowSpec(4, 2), {"unitz": 3})
    with pytest.raises(ValueError, match="divisible"):
        build_forecaster("transformer", "t", WindowSpec(4, 2), {"d_model": 10, "heads": 3})


def _tiny_data(n=400, nan_at=None):
    rng = np.random.default_rng(0)
    t = np.arange(n, dtype=np.float32)
    values = (np.sin(2 * np.pi * t / 12) + 0.1 * rng.normal(size=n)).astype(np.float32)
    if nan_at is not None:
        values[nan_at] = np.nan
    offsets = np.array([0, n // 2, n])
    train = window_starts(offsets, 24, 6, stop=offsets[1:] - 6)
    val = window_starts(offsets, 24, 6, min_target_end=offsets[1:] - 6)
    return TrainingData(values, train, val)


def _fit(family="lstm", seed=0, epochs=2, options=None, **settings):
    data = _tiny_data()
    f = build_forecaster(family, family, SPEC, {**SMALL.get(family, {}), **(options or {})})
    history = f.fit(data, TrainSettings(max_epochs=epochs, seed=seed, batch_size=32,
                                        **settings))
    return f, history, data.values


X_ROWS = (0, 100, 300)


def _x(values):
    return np.stack([values[i : i + 24] for i in X_ROWS])


YAML_FAMILIES = sorted(f for f, cls in families().items() if getattr(cls, "yaml_entry", True))


@pytest.mark.parametrize("family", YAML_FAMILIES)
def test_every_family_honours_the_contract(family, tmp_path):
    f, _, values = _fit(family, epochs=1)
    x = _x(values)
    yhat = f.predict(x)
    levels = (len(f.quantiles),) if f.quantiles else ()  # deepar: always a distribution
    assert yhat.shape == (3, 6, *levels) and np.isfinite(yhat).all()
    g = load_forecaster(f.save(tmp_path / family))
    np.testing.assert_allclose(g.predict(x), yhat, rtol=1e-5, atol=1e-5)


def test_same_seed_same_weights_and_losses():
    f1, h1, values = _fit(seed=3)
    f2, h2, _ = _fit(seed=3)
    assert h1["loss"] == h2["loss"]
    np.testing.assert_array_equal(f1.predict(_x(values)), f2.predict(_x(values)))


def test_steps_per_execution_divides_the_epoch():
    from deepcast.forecasting.training import steps_per_execution

    assert steps_per_execution("auto", 175) == 25
    assert steps_per_execution("auto", 11) == 11 and steps_per_execution("auto", 97) == 1
    assert steps_per_execution(16, 175) == 7 and steps_per_execution(1, 64) == 1


def test_steps_per_execution_keeps_every_epochs_batches():
    """Several steps per compiled call train on exactly the same batches as one."""
    f1, h1, values = _fit("mlp", epochs=3, steps_per_execution=1)
    f2, h2, _ = _fit("mlp", epochs=3)  # auto: 11 steps per epoch, all in one call
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-5)
    np.testing.assert_allclose(h1["val_loss"], h2["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(f1.predict(_x(values)), f2.predict(_x(values)), rtol=1e-4,
                               atol=1e-5)


def test_windows_per_epoch_caps_every_epochs_steps():
    """training.windows_per_epoch: each epoch fits on a seeded sample of that many windows
    (64 of 330 at batch 32: 2 steps, not 11); the same seed gives the same fit."""
    n = len(_tiny_data().train_starts)
    full, _, _ = _fit("mlp", epochs=2)
    f, h1, values = _fit("mlp", epochs=2, windows_per_epoch=64)
    g, h2, _ = _fit("mlp", epochs=2, windows_per_epoch=64)
    assert int(full.model.optimizer.iterations) == 2 * -(-n // 32) and n > 64
    assert int(f.model.optimizer.iterations) == 2 * 2
    assert h1 == h2 and len(h1["val_loss"]) == 2
    np.testing.assert_array_equal(f.predict(_x(values)), g.predict(_x(values)))


def test_min_steps_per_epoch_repeat_a_small_panels_windows():
    """training.min_steps_per_epoch: an epoch of fewer batches repeats its windows up to
    that many (330 windows at batch 32 are 11 steps: 25 asked); a larger count, or a
    windows_per_epoch sample, is left as it is; the same seed gives the same fit."""
    f, h1, values = _fit("mlp", epochs=2, min_steps_per_epoch=25)
    g, h2, _ = _fit("mlp", epochs=2, min_steps_per_epoch=25)
    assert int(f.model.optimizer.iterations) == 2 * 25
    assert h1 == h2 and len(h1["val_loss"]) == 2
    np.testing.assert_array_equal(f.predict(_x(values)), g.predict(_x(values)))
    few, _, _ = _fit("mlp", epochs=2, min_steps_per_epoch=5)
    sample, _, _ = _fit("mlp", epochs=2, min_steps_per_epoch=25, windows_per_epoch=64)
    assert int(few.model.optimizer.iterations) == 2 * 11
    assert int(sample.model.optimizer.iterations) == 2 * 2


def test_min_steps_per_epoch_auto_is_50_unless_the_machine_says(monkeypatch):
    """'auto' (the YAML's default) is 50 batches; DEEPCAST_MIN_STEPS_PER_EPOCH says what it
    means on a machine (the suite: 0); an explicit count wins; a bad variable is named."""
    from deepcast.features.errors import ConfigError
    from deepcast.forecasting.runtime import MIN_STEPS_ENV, min_steps_per_epoch
    from deepcast.forecasting.training import windows_per_epoch
    from deepcast.pipelines.config.schema_run import TrainingConfig

    assert TrainingConfig().min_steps_per_epoch == "auto"
    monkeypatch.delenv(MIN_STEPS_ENV, raising=False)
    assert min_steps_per_epoch("auto") == 50 and min_steps_per_epoch(7) == 7
    assert windows_per_epoch(330, TrainSettings(min_steps_per_epoch="auto"), 32) == 50 * 32
    monkeypatch.setenv(MIN_STEPS_ENV, "0")
    assert min_steps_per_epoch("auto") == 0 and min_steps_per_epoch(7) == 7
    assert windows_per_epoch(330, TrainSettings(min_steps_per_epoch="auto"), 32) == 330
    monkeypatch.setenv(MIN_STEPS_ENV, "lots")
    with pytest.raises(ConfigError, match="DEEPCAST_MIN_STEPS_PER_EPOCH='lots' is not"):
        min_steps_per_epoch("auto")


@pytest.mark.parametrize("family", ["lstm", "mlp"])
def test_neural_families_learn(family):
    _, history, _ = _fit(family, epochs=3)
    assert history["loss"][-1] < history["loss"][0]


def test_nan_loss_fails_the_run():
    f = build_forecaster("lstm", "lstm", SPEC, {"units": 4, "instance_norm": False})
    with pytest.raises(RunFailed, match="NaN"):
        f.fit(_tiny_data(nan_at=50), TrainSettings(max_epochs=2, batch_size=32))


def test_quantile_head_is_monotone_and_round_trips(tmp_path):
    f, history, values = _fit("mlp", epochs=3, options={"quantiles": [0.9, 0.1]})
    assert f.quantiles == (0.1, 0.5, 0.9)  # sorted, median added
    q = f.predict(_x(values))
    assert q.shape == (3, 6, 3)
    assert (np.diff(q, axis=-1) >= 0).all()
    assert history["loss"][-1] < history["loss"][0]
    g = load_forecaster(f.save(tmp_path / "q"))
    np.testing.assert_allclose(g.predict(_x(values)), q, rtol=1e-5, atol=1e-5)


def test_pinball_loss_by_hand():
    from deepcast.forecasting.layers import PinballLoss

    loss = PinballLoss([0.1, 0.9])
    y = np.array([[1.0]], dtype="float32")
    pred = np.array([[[0.0, 2.0]]], dtype="float32")
    # q=0.1: err=1 -> 0.1; q=0.9: err=-1 -> 0.1; mean 0.1
    assert float(loss(y, pred)) == pytest.approx(0.1)


@pytest.mark.parametrize("settings", [
    {"optimizer": "adamw", "schedule": "cosine", "clipnorm": 1.0, "jit_compile": True},
    {"optimizer": "sgd", "schedule": "plateau", "l2": 1e-3},
    {"optimizer": "rmsprop", "weight_decay": 1e-4, "jit_compile": False},
])
def test_engine_options_train(settings):
    _, history, _ = _fit("mlp", epochs=2, **settings)
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()


def test_l2_adds_a_penalty():
    _, plain, _ = _fit("mlp", epochs=1)
    _, penalised, _ = _fit("mlp", epochs=1, l2=0.1)
    assert penalised["loss"][0] > plain["loss"][0]


def test_checkpoint_resume_gives_the_uninterrupted_result(tmp_path):
    """Kill training after epoch 2 (an exception from a callback stands in for SIGKILL),
    rerun: it resumes at epoch 3 and ends with the same weights as one clean run."""
    data = _tiny_data()
    settings = TrainSettings(max_epochs=4, patience=10, batch_size=32, seed=5,
                             schedule="plateau", checkpoint_every=0)
    options = {"units": 4, "dropout": 0.2}
    clean = build_forecaster("lstm", "lstm", SPEC, options)
    h_clean = clean.fit(data, settings)

    class Killed(Exception):
        pass

    def die_after_two(epoch, logs):
        if epoch == 1:
            raise Killed

    ckpt = tmp_path / "ckpt"
    first = build_forecaster("lstm", "lstm", SPEC, options)
    with pytest.raises(Killed):
        first.fit(data, settings, on_epoch=die_after_two, checkpoint_dir=ckpt)
    assert (ckpt / "state.json").is_file()

    seen = []
    resumed = build_forecaster("lstm", "lstm", SPEC, options)
    h_resumed = resumed.fit(data, settings, on_epoch=lambda e, logs: seen.append(e),
                            checkpoint_dir=ckpt)
    assert seen == [0, 1, 2, 3]  # replayed 0-1 (restored), trained 2-3
    assert h_resumed["loss"] == pytest.approx(h_clean["loss"], rel=1e-6)
    x = _x(data.values)
    np.testing.assert_allclose(resumed.predict(x), clean.predict(x), rtol=1e-5, atol=1e-6)
    assert not ckpt.exists()  # removed once training completed


def test_checkpoint_of_other_settings_is_ignored(tmp_path):
    data = _tiny_data()
    ckpt = tmp_path / "ckpt"

    def stop(epoch, logs):  # after epoch 0's checkpoint
        if epoch == 1:
            raise RuntimeError("stop")

    f = build_forecaster("mlp", "m", SPEC, SMALL["mlp"])
    with pytest.raises(RuntimeError):
        f.fit(data, TrainSettings(max_epochs=3, batch_size=32, checkpoint_every=0), stop, ckpt)
    assert (ckpt / "state.json").is_file()
    g = build_forecaster("mlp", "m", SPEC, SMALL["mlp"])
    seen = []
    g.fit(data, TrainSettings(max_epochs=3, batch_size=32, seed=9, checkpoint_every=0),
          lambda e, logs: seen.append(e), ckpt)
    assert seen == [0, 1, 2]  # different seed: trained from scratch


def test_checkpoints_are_written_at_most_every_checkpoint_every_seconds(tmp_path):
    """A fit shorter than ``checkpoint_every`` writes no checkpoint (nothing to lose that
    takes longer to redo than to save); the cadence is not part of what a resume matches."""
    from deepcast.forecasting.training import _fingerprint

    data = _tiny_data()
    ckpt = tmp_path / "ckpt"
    epochs = []

    def stop(epoch, logs):
        epochs.append(epoch)
        if epoch == 2:
            raise RuntimeError("stop")

    f = build_forecaster("mlp", "m", SPEC, SMALL["mlp"])
    with pytest.raises(RuntimeError):
        f.fit(data, TrainSettings(max_epochs=4, batch_size=32, checkpoint_every=3600),
              stop, ckpt)
    assert epochs == [0, 1, 2] and not (ckpt / "state.json").exists()
    net = build_forecaster("mlp", "m", SPEC, SMALL["mlp"])
    assert (_fingerprint(net, TrainSettings(checkpoint_every=0), data)
            == _fingerprint(net, TrainSettings(checkpoint_every=60), data))


def test_custom_layers_round_trip_in_a_fresh_process(tmp_path):
    """Every custom layer (instance norm, patches, positional encoding, sorted quantiles)
    loads with safe_mode=True in a process that only imports deepcast, and predicts the same."""
    import json
    import subprocess
    import sys

    f, _, values = _fit("transformer", epochs=1,
                        options={"quantiles": [0.1, 0.9], "positional": "sinusoidal"})
    path = f.save(tmp_path / "t")
    x = _x(values)
    np.save(tmp_path / "x.npy", x)
    code = ("import json, sys, numpy as np\n"
            "from deepcast.forecasting.models import load_forecaster\n"
            "f = load_forecaster(sys.argv[1])\n"
            "print(json.dumps(f.predict(np.load(sys.argv[2])).tolist()))\n")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(fresh, f.predict(x), rtol=1e-6, atol=1e-6)


def test_runtime_resolution_on_this_machine(monkeypatch):
    from deepcast.features.errors import ConfigError
    from deepcast.forecasting.runtime import JIT_ENV, XLA_MIN_STEPS, resolve_runtime

    monkeypatch.delenv(JIT_ENV, raising=False)  # a user's machine: XLA on one device
    auto = resolve_runtime()
    if auto.device == "cpu":  # the CI machine: no accelerator
        assert (auto.dtype_policy, auto.jit_compile, auto.strategy) == ("float32", True, None)
        # on a CPU, auto compiles only a fit long enough for XLA to pay for its compile
        assert auto.jit_by_steps and not auto.xla_for(XLA_MIN_STEPS - 1)
        assert auto.xla_for(XLA_MIN_STEPS)
        with pytest.raises(ConfigError, match="no GPU"):
            resolve_runtime("gpu")
    cpu = resolve_runtime("cpu", mixed_precision=False, jit_compile=False)
    assert cpu.device == "cpu" and cpu.strategy is not None and not cpu.jit_compile
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_runtime("quantum")
    # DEEPCAST_JIT_COMPILE says what auto means on this machine; an explicit setting wins
    monkeypatch.setenv(JIT_ENV, "off")
    assert not resolve_runtime().jit_compile and resolve_runtime(jit_compile=True).jit_compile
    assert not resolve_runtime().xla_for(10**6) and resolve_runtime(jit_compile=True).xla_for(1)
    monkeypatch.setenv(JIT_ENV, "on")
    assert resolve_runtime().jit_compile and resolve_runtime().xla_for(1)
    monkeypatch.setenv(JIT_ENV, "maybe")
    with pytest.raises(ConfigError, match="DEEPCAST_JIT_COMPILE='maybe' is not on, off"):
        resolve_runtime()


def test_mixed_precision_model_is_saved_as_float32(tmp_path):
    """What a GPU run does (mixed float16), forced on the CPU: the saved artifact is float32
    and loads and predicts on a CPU-only machine like any other."""
    f, history, values = _fit("mlp", epochs=1, mixed_precision=True, jit_compile=False)
    assert np.isfinite(history["loss"]).all()
    assert {layer.dtype_policy.name for layer in f.model.layers} == {"float32"}
    g = load_forecaster(f.save(tmp_path / "mp"))
    np.testing.assert_allclose(g.predict(_x(values)), f.predict(_x(values)), rtol=1e-6)


def test_a_broken_keras_file_is_named_as_broken(tmp_path):
    """Keras reports a truncated .keras file as "File not found": deepcast says what it
    is (and a missing one as missing)."""
    from deepcast.features.errors import RunFailed
    from deepcast.forecasting.base import KERAS_FILE

    f, _, _ = _fit("linear", epochs=1)
    saved = f.save(tmp_path / "m")
    model_file = next(saved.rglob(KERAS_FILE))
    model_file.write_bytes(model_file.read_bytes()[:100])
    with pytest.raises(RunFailed, match="not a valid .keras archive"):
        load_forecaster(saved)
    model_file.unlink()
    with pytest.raises(RunFailed, match="is missing from the model bundle"):
        load_forecaster(saved)
