"""Covariates, calendar features, embeddings and short-series padding."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.covariates import (
    CovariateEncoder,
    CovariateSpec,
    calendar_features,
    check_future,
    default_calendar,
    split_future,
)
from deepcast.features.errors import DataError
from deepcast.features.scalers import SeriesScaler
from deepcast.features.schema import ColumnSpec
from deepcast.features.windows import (
    left_pad,
    make_dataset,
    pad_panel,
    panel_from_frame,
    window_inputs,
    window_starts,
)
from deepcast.forecasting.base import InputSpec, TrainingData, TrainSettings, WindowSpec
from deepcast.forecasting.models import build_forecaster
from deepcast.forecasting.predictor import Predictor


def test_default_calendar_by_freq():
    assert default_calendar("30min") == ("hour", "dayofweek")
    assert default_calendar("h") == ("hour", "dayofweek")
    assert default_calendar("D") == ("dayofweek", "dayofyear")
    assert default_calendar("W") == ("weekofyear",)
    assert default_calendar("MS") == ("month",)
    assert default_calendar("QS") == ("quarter",)
    assert default_calendar("YS") == ()
    assert default_calendar(1) == ()


def test_calendar_features_by_hand():
    ds = pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01"])
    f = calendar_features(ds, ("month",))
    # month 0 -> angle 0; month 3 -> pi/2; month 6 -> pi
    np.testing.assert_allclose(f, [[0, 1], [1, 0], [0, -1]], atol=1e-6)


def _frame():
    return pd.DataFrame({
        "unique_id": ["a"] * 6 + ["b"] * 4,
        "ds": list(range(1, 7)) + list(range(1, 5)),
        "y": np.arange(10, dtype=float),
        "kind": ["x"] * 6 + ["y"] * 4,
        "temp": [1.0, 2, 3, 4, 100, 200, 5, 6, 7, 8],
        "price": np.arange(10, dtype=float) * 10,
    })


def test_encoder_fits_on_training_rows_only():
    df = _frame()
    spec = CovariateSpec(static=("kind",), past=("temp",), future=("price",),
                         categorical=("kind",), id_embedding=2)
    train = df.groupby("unique_id").head(4)  # the holdout (temp 100, 200) is not seen
    enc = CovariateEncoder(spec).fit(train)
    assert enc.numeric["temp"][0] == pytest.approx(np.mean([1, 2, 3, 4, 5, 6, 7, 8]))
    assert enc.vocab == {"kind": {"x": 1, "y": 2}} and enc.ids == {"a": 1, "b": 2}
    cov = enc.transform(df)
    assert cov.past.shape == (10, 1) and cov.future.shape == (10, 1)
    assert cov.static_cat.tolist() == [[1], [2]] and cov.series.tolist() == [1, 2]
    # unseen series and category -> code 0; round trip through JSON-able dict
    other = df.assign(unique_id="new", kind="z")
    enc2 = CovariateEncoder.from_dict(enc.to_dict())
    c2 = enc2.transform(other)
    assert c2.series.tolist() == [0] and c2.static_cat.tolist() == [[0]]


def test_past_covariates_never_reach_the_horizon():
    """Leakage: a window's past covariates are exactly the lookback's; the horizon's values
    of a past-only covariate are never gathered (future ones are, by design)."""
    values = np.arange(40, dtype=np.float32)
    offsets = np.array([0, 40])
    spec = CovariateSpec(past=("p",), future=("f",))
    df = pd.DataFrame({"unique_id": "s", "ds": range(40), "y": values,
                       "p": values * 100, "f": values * 1000})
    cov = CovariateEncoder(spec).fit(df).transform(df)
    cov.past = values[:, None] * 100  # unscaled, to read positions back
    cov.future = values[:, None] * 1000
    starts = window_starts(offsets, 8, 4)
    for (x, y) in make_dataset(values, starts, (8, 4, 64), covariates=cov, offsets=offsets):
        y_pos = x["y"].numpy()[:, :, 0]
        past_pos = x["past"].numpy()[:, :, 0] / 100
        fut_pos = x["future"].numpy()[:, :, 0] / 1000
        np.testing.assert_array_equal(past_pos, y_pos)  # lookback only
        assert past_pos.max(axis=1).tolist() == (y.numpy()[:, 0] - 1).tolist()
        np.testing.assert_array_equal(fut_pos[:, 8:], y.numpy())  # horizon: known ahead
    numpy_inputs = window_inputs(values, starts, 8, 4, cov, offsets)
    assert numpy_inputs["past"].shape == (len(starts), 8, 1)


def test_left_pad_and_padded_windows():
    values = np.array([1, 2, 3, 10, 20], dtype=np.float32)
    offsets = np.array([0, 3, 5])
    padded, new = left_pad(values, offsets, np.array([2, 0]), np.nan)
    assert new.tolist() == [0, 5, 7]
    np.testing.assert_array_equal(padded, [np.nan, np.nan, 1, 2, 3, 10, 20])
    # lookback 3: the first window of series 0 sees one observed point
    starts = window_starts(new, 3, 1, stop=new[1:])
    assert starts.tolist() == [0, 1]  # series 1 (length 2) has no window


def _tiny(n_series=3, n=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_series):
        t = np.arange(n)
        y = 10 + s + np.sin(2 * np.pi * t / 12) + 0.1 * rng.normal(size=n)
        rows.append(pd.DataFrame({"unique_id": f"s{s}", "ds": t + 1, "y": y,
                                  "kind": "even" if s % 2 == 0 else "odd",
                                  "promo": (t % 7 == 0).astype(float)}))
    return pd.concat(rows, ignore_index=True)


def _fit_with_covariates(df, spec, family="mlp", pad=0, options=None):
    panel = panel_from_frame(df[["unique_id", "ds", "y"]])
    scaler = SeriesScaler().fit(panel)
    pads = np.full(panel.n_series, pad)
    scaled = pad_panel(scaler.transform(panel), pads)
    enc = CovariateEncoder(spec).fit(df)
    cov = enc.transform(df)
    cov.past, _ = left_pad(cov.past, panel.offsets, pads, 0.0)
    cov.future, _ = left_pad(cov.future, panel.offsets, pads, 0.0)
    starts = window_starts(scaled.offsets, 12, 4)
    inputs = InputSpec(n_past=len(spec.past), n_future=spec.n_future,
                       cardinalities=tuple(enc.cardinalities), embedding_dim=2,
                       n_series=len(enc.ids) + 1 if spec.id_embedding else 0,
                       id_embedding=spec.id_embedding)
    if options is None:
        options = {"hidden_size": 8} if family == "mlp" else {"units": 4}
    f = build_forecaster(family, family, WindowSpec(12, 4, 12), options, inputs)
    f.fit(TrainingData(scaled.values, starts, starts[:0], cov, scaled.offsets),
          TrainSettings(max_epochs=2, batch_size=32))
    return Predictor(f, scaler, ColumnSpec(freq=1), enc, min_history=1)


def test_future_covariates_and_embeddings_end_to_end(tmp_path):
    df = _tiny()
    spec = CovariateSpec(static=("kind",), future=("promo",), categorical=("kind",),
                         id_embedding=3)
    predictor = _fit_with_covariates(df, spec)
    future = pd.DataFrame({"unique_id": np.repeat(["s0", "s1", "s2"], 4),
                           "ds": np.tile(np.arange(61, 65), 3), "promo": 0.0})
    frame = pd.concat([df, future.assign(y=np.nan, kind=np.repeat(["even", "odd", "even"],
                                                                    4))])
    fc = predictor.predict(frame)
    assert len(fc) == 12 and np.isfinite(fc["yhat"]).all()
    # a different promo plan over the horizon changes the forecast (the input is used)
    frame2 = frame.copy()
    frame2.loc[frame2["y"].isna(), "promo"] = 5.0
    assert not np.allclose(predictor.predict(frame2)["yhat"], fc["yhat"])
    # a missing future value names the series and the dates
    broken = frame.drop(frame.index[(frame["unique_id"] == "s1") & frame["y"].isna()][:2])
    with pytest.raises(DataError, match=r"s1: 61, 62"):
        predictor.predict(broken)
    # an unseen series (and category) forecasts with the mean embeddings, no crash
    new = frame[frame["unique_id"] == "s0"].assign(unique_id="brand-new", kind="rare")
    assert np.isfinite(predictor.predict(new)["yhat"]).all()
    # bundle round trip keeps the encoder
    again = Predictor.load(predictor.save(tmp_path / "b"))
    pd.testing.assert_frame_equal(again.predict(frame), fc)


def test_unseen_embedding_row_is_the_mean():
    df = _tiny()
    spec = CovariateSpec(id_embedding=3)
    predictor = _fit_with_covariates(df, spec)
    table = predictor.forecaster.model.get_layer("series_embedding").get_weights()[0]
    np.testing.assert_allclose(table[0], table[1:].mean(axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["mlp", "lstm", "naive", "seasonal_naive", "mean", "drift"])
def test_short_series_are_padded_and_forecast(family):
    df = _tiny()
    short = df[df["unique_id"] == "s1"].tail(5)  # 5 points, lookback 12
    data = pd.concat([df[df["unique_id"] != "s1"], short])
    if family in ("mlp", "lstm"):
        predictor = _fit_with_covariates(data, CovariateSpec(), family, pad=11)
    else:
        panel = panel_from_frame(data[["unique_id", "ds", "y"]])
        f = build_forecaster(family, family, WindowSpec(12, 4, 12), {})
        predictor = Predictor(f, SeriesScaler().fit(panel), ColumnSpec(freq=1), None, 1)
    fc = predictor.predict(data)
    assert np.isfinite(fc["yhat"]).all() and len(fc) == 12
    assert fc[fc["unique_id"] == "s1"]["ds"].tolist() == [61, 62, 63, 64]


def test_split_future_and_check_future():
    df = pd.DataFrame({"unique_id": ["a"] * 4 + ["b"] * 3, "ds": [1, 2, 3, 4, 1, 2, 3],
                       "y": [1.0, np.nan, 3.0, np.nan, 1.0, 2.0, 3.0]})
    history, future = split_future(df, "y")
    # an inner gap stays in the history (validation reports it); only the tail is future
    assert history["ds"].tolist() == [1, 2, 3, 1, 2, 3] and future["ds"].tolist() == [4]
    rows = pd.DataFrame({"unique_id": ["a", "b"], "ds": [4, 4], "price": [1.0, None]})
    with pytest.raises(DataError) as info:
        check_future(rows, np.array(["a", "b"]), np.array([4, 5, 4, 5]), ("price",), 2)
    msg = str(info.value)
    assert "a: 5" in msg and "b: 4, 5" in msg and "3 forecast step(s) of 2 series" in msg


def test_check_future_refuses_values_the_model_cannot_take():
    """Text, 1e39 or a step given twice with different values would have forecast NaN, inf
    or whichever row came last, with exit 0 (a trial found all three); each is a DataError
    naming the series, dates and values. Identical repeats pass; rows that match no step
    are counted in the missing-values message."""
    ids, dates = np.array(["a", "b"]), np.array([4, 5, 4, 5])

    def rows(price, ds=(4, 5, 4, 5)):
        return pd.DataFrame({"unique_id": ["a", "a", "b", "b"][:len(ds)], "ds": list(ds),
                             "price": price})

    ok = check_future(rows([1, 0, 1, 1]), ids, dates, ("price",), 2)
    assert ok["price"].dtype == np.float64 and ok["price"].tolist() == [1.0, 0.0, 1.0, 1.0]
    with pytest.raises(DataError, match=r"'price' is not a finite number .* 1 forecast "
                       r"step\(s\) of 1 series: b: 5 \('yes'\)"):
        check_future(rows([1, 0, 1, "yes"]), ids, dates, ("price",), 2)
    with pytest.raises(DataError, match=r"a: 4 \(1e\+39\)"):
        check_future(rows([1e39, 0, 1, 1]), ids, dates, ("price",), 2)
    with pytest.raises(DataError, match=r"a: 5 \(inf\)"):
        check_future(rows([1, np.inf, 1, 1]), ids, dates, ("price",), 2)
    twice = pd.concat([rows([1, 0, 1, 1]), rows([1, 0, 1, 7])], ignore_index=True)
    with pytest.raises(DataError, match=r"1 forecast step\(s\) of 1 series are given "
                       r"twice with different values: b: 5 \(1 vs 7\)"):
        check_future(twice, ids, dates, ("price",), 2)
    same = pd.concat([rows([1, 0, 1, 1]), rows([1, 0, 1, 1])], ignore_index=True)
    assert len(check_future(same, ids, dates, ("price",), 2)) == 4
    other_case = rows([1, 0, 1, 1]).replace({"unique_id": {"b": "B"}})
    with pytest.raises(DataError, match=r"\(2 given future row\(s\) match no forecast "
                       r"step, e.g. B at 4"):
        check_future(other_case, ids, dates, ("price",), 2)
    # rows beyond the horizon are fine and not counted as unmatched
    longer = pd.concat([rows([1, 0, 1, 1]), rows([1, 1, 1, 1], ds=(6, 7, 6, 7))])
    assert len(check_future(longer, ids, dates, ("price",), 2)) == 4
    with pytest.raises(DataError) as info:
        check_future(longer[longer["ds"] != 5], ids, dates, ("price",), 2)
    assert "match no forecast step" not in str(info.value)


def test_covariate_model_bundle_predicts_the_same_in_a_fresh_process(tmp_path):
    """Embedding layers (series ID, categorical statics), observed mask and the future
    inputs survive save -> load (safe_mode=True) in a process that only imports deepcast."""
    import subprocess
    import sys

    df = _tiny()
    spec = CovariateSpec(static=("kind",), future=("promo",), categorical=("kind",),
                         id_embedding=3)
    predictor = _fit_with_covariates(df, spec, family="gru")
    future = pd.DataFrame({"unique_id": np.repeat(["s0", "s1", "s2"], 4),
                           "ds": np.tile(np.arange(61, 65), 3), "promo": 1.0,
                           "kind": np.repeat(["even", "odd", "even"], 4)})
    frame = pd.concat([df, future.assign(y=np.nan)], ignore_index=True)
    frame.to_csv(tmp_path / "frame.csv", index=False)
    path = predictor.save(tmp_path / "bundle")
    code = ("import sys, pandas as pd\n"
            "from deepcast.forecasting.predictor import Predictor\n"
            "p = Predictor.load(sys.argv[1])\n"
            "p.predict(pd.read_csv(sys.argv[2])).to_csv(sys.argv[3], index=False)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "frame.csv"),
                           str(tmp_path / "out.csv")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = pd.read_csv(tmp_path / "out.csv")
    here = predictor.predict(pd.read_csv(tmp_path / "frame.csv"))
    np.testing.assert_allclose(fresh["yhat"], here["yhat"], rtol=1e-6)


def test_unseen_categories_and_series_are_named():
    """A category or series the model never saw gets the mean embedding (documented); the
    forecast's notes now say which (a trial: a new region and regions written as numbers
    moved the forecasts without a word)."""
    df = _tiny()
    spec = CovariateSpec(static=("kind",), categorical=("kind",), id_embedding=2)
    enc = CovariateEncoder(spec).fit(df)
    assert enc.unseen(df) == {}
    later = pd.concat([df.assign(kind=df["kind"].where(df["unique_id"] != "s1", "prime")),
                       _tiny(1).assign(unique_id="s9")], ignore_index=True)
    (cats, ids) = enc.unseen_notes(enc.unseen(later))
    assert cats.startswith("static covariate 'kind': 1 series have a category not seen in "
                           "training ('prime'; training had 2)")
    assert ids.startswith("1 series not seen in training (e.g. s9)")
    # a folder forecast's shards: their counts add up to the panel's
    halves = [later[later["unique_id"].isin(part)] for part in (["s0", "s1"], ["s2", "s9"])]
    merged = enc.merge_unseen([enc.unseen(h) for h in halves])
    assert merged == enc.unseen(later) and enc.unseen_notes(merged) == [cats, ids]
