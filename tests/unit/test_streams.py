"""Windows streamed epoch by epoch (forecasting.streams) train what the panel path trains."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.covariates import CovariateEncoder, CovariateSpec
from deepcast.features.scalers import SeriesScaler
from deepcast.features.windows import panel_from_frame, window_starts
from deepcast.forecasting.base import InputSpec, TrainingData, TrainSettings, WindowSpec
from deepcast.forecasting.models import build_forecaster
from deepcast.forecasting.streams import PanelStream, WindowBatch, sample_starts


def _data(n_series=4, n=80):
    rng = np.random.default_rng(3)
    parts = [pd.DataFrame({"unique_id": f"s{s}", "ds": np.arange(n) + 1,
                           "y": 5 + s + np.sin(np.arange(n) / 3) + 0.1 * rng.normal(size=n),
                           "promo": (np.arange(n) % 5 == 0).astype(float)})
             for s in range(n_series)]
    df = pd.concat(parts, ignore_index=True)
    panel = panel_from_frame(df)
    scaled = SeriesScaler().fit(panel).transform(panel)
    spec = CovariateSpec(future=("promo",), id_embedding=2)
    enc = CovariateEncoder(spec).fit(df)
    cov = enc.transform(df)
    train = window_starts(scaled.offsets, 12, 4, stop=scaled.ends - 4)
    val = window_starts(scaled.offsets, 12, 4, min_target_end=scaled.ends - 4)
    inputs = InputSpec(n_future=spec.n_future, n_series=len(enc.ids) + 1, id_embedding=2)
    return scaled, cov, train, val, inputs


def _fit(data: TrainingData, inputs: InputSpec, family: str, options: dict):
    f = build_forecaster(family, family, WindowSpec(12, 4, 12), options, inputs)
    history = f.fit(data, TrainSettings(max_epochs=3, batch_size=16, windows_per_epoch=50,
                                        seed=7))
    return f.model.get_weights(), history


@pytest.mark.parametrize("family,options", [
    ("mlp", {"hidden_size": 8}), ("deepar", {"hidden_size": 4, "layers": 1, "num_samples": 10})])
def test_a_stream_of_one_panel_trains_the_panel_paths_model(family, options):
    """Same windows, same order, same batches: bit-identical weights and losses (DeepAR:
    the horizon's values fed as its teacher-forced input too)."""
    scaled, cov, train, val, inputs = _data()
    panel_fit = _fit(TrainingData(scaled.values, train, val, cov, scaled.offsets), inputs,
                     family, options)
    stream = PanelStream(scaled.values, train, val, (12, 4), cov, scaled.offsets)
    empty = np.zeros(0, dtype=np.int64)
    stream_fit = _fit(TrainingData(np.zeros(0, np.float32), empty, empty, stream=stream),
                      inputs, family, options)
    for a, b in zip(panel_fit[0], stream_fit[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert panel_fit[1] == stream_fit[1]


def test_sample_is_the_panel_paths_and_depends_on_seed_and_epoch_only():
    starts = np.arange(1000, dtype=np.int64) * 3
    a = sample_starts(starts, 100, 1, 0, 5000, (12, 4))
    assert len(set(a.tolist())) == 100 and set(a.tolist()) <= set(starts.tolist())
    np.testing.assert_array_equal(a, sample_starts(starts, 100, 1, 0, 5000, (12, 4)))
    assert not np.array_equal(a, sample_starts(starts, 100, 1, 1, 5000, (12, 4)))
    assert not np.array_equal(a, sample_starts(starts, 100, 2, 0, 5000, (12, 4)))
    with pytest.raises(ValueError, match="without replacement"):
        sample_starts(starts, 1001, 1, 0, 5000, (12, 4))


def test_gathered_windows_are_the_series_values():
    scaled, cov, train, _, _ = _data()
    stream = PanelStream(scaled.values, train, train[:0], (12, 4), cov, scaled.offsets)
    batch = stream.windows(train[[0, 7, -1]])
    for row, s in enumerate(train[[0, 7, -1]]):
        np.testing.assert_array_equal(batch.inputs["y"][row, :, 0], scaled.values[s:s + 12])
        np.testing.assert_array_equal(batch.targets[row], scaled.values[s + 12:s + 16])
    both = WindowBatch.concat([batch, batch.take(np.array([2, 0]))])
    assert len(both) == 5 and both.inputs["series"].tolist()[3:] == \
        batch.inputs["series"][[2, 0]].tolist()


def test_tft_measures_its_importances_on_streamed_windows():
    """TFT's variable importances come from a sample of the stream when the trainer has
    no panel (the panel's arrays are empty)."""
    scaled, cov, train, val, inputs = _data()
    stream = PanelStream(scaled.values, train, val, (12, 4), cov, scaled.offsets)
    empty = np.zeros(0, dtype=np.int64)
    f = build_forecaster("tft", "tft", WindowSpec(12, 4, 12), {"hidden_size": 8, "heads": 2},
                         inputs)
    f.fit(TrainingData(np.zeros(0, np.float32), empty, empty, stream=stream),
          TrainSettings(max_epochs=1, batch_size=16, windows_per_epoch=32, seed=0))
    weights = [w for v in f.variable_importances.values() for w in v]
    assert weights and np.isfinite(weights).all()
