"""The benchmark-winning families (N-HiTS, N-BEATS, TiDE, TSMixer, TFT): their fixed bases by
hand, the structure each paper prescribes, quantile heads, every covariate kind the paper
takes, and safe save/load in a fresh process."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from deepcast.features.covariates import CovariateSpec
from deepcast.forecasting.base import InputSpec, WindowSpec
from deepcast.forecasting.layers import basis_matrix
from deepcast.forecasting.models import build_forecaster, load_forecaster
from tests.unit.test_covariates import _fit_with_covariates, _tiny
from tests.unit.test_models import SMALL, _fit, _x

ZOO = ["nhits", "nbeats", "tide", "tsmixer"]  # tft: tests/unit/test_tft.py


def test_bases_by_hand():
    # two knots to four steps, as torch.nn.functional.interpolate(mode="linear")
    np.testing.assert_allclose(basis_matrix("interpolate", 4, 2, 4) @ [0.0, 1.0],
                               [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(basis_matrix("interpolate", 3, 1, 3) @ [2.0], [2.0] * 3)
    trend = basis_matrix("trend", 4, 3, 4)  # 1, t, t^2 with t = 0, 1/4, 2/4, 3/4
    np.testing.assert_allclose(trend[:, 2], [0.0, 1 / 16, 4 / 16, 9 / 16])
    # frequencies 0, 1, 1.5, ..., 5.5 cycles per horizon (2 harmonics), cos then sin
    season = basis_matrix("seasonality", 12, 2, 12)
    assert season.shape == (12, 2 * 11) and np.allclose(season[:, 0], 1.0)
    np.testing.assert_allclose(season[:, 1], np.cos(2 * np.pi * np.arange(12) / 12), atol=1e-12)


def test_nhits_one_knot_forecasts_a_level_shift():
    """With one stack whose forecast has a single knot, every block's forecast is flat:
    the output is the last value plus one constant per window (hierarchical interpolation)."""
    f, _, values = _fit("nhits", epochs=1, options={"pool_sizes": [1], "downsample": [6],
                                                   "instance_norm": False})
    x = _x(values)
    shift = f.predict(x) - x[:, -1:]
    np.testing.assert_allclose(shift, np.repeat(shift[:, :1], 6, axis=1), atol=1e-5)


def test_nbeats_trend_stack_forecasts_a_polynomial():
    """An interpretable trend stack (degree 2) can only add a quadratic in t to the level."""
    f, _, values = _fit("nbeats", epochs=1, options={"stack_types": ["trend"],
                                                    "hidden_size": 16, "instance_norm": False})
    shift = f.predict(_x(values)) - _x(values)[:, -1:]
    assert np.abs(np.diff(shift, n=3, axis=1)).max() < 1e-4
    assert np.abs(np.diff(shift, n=2, axis=1)).max() > 1e-6  # and is not a constant


def test_option_errors_name_the_option():
    with pytest.raises(ValueError, match="one value per stack"):
        build_forecaster("nhits", "n", WindowSpec(24, 6), {"pool_sizes": [2, 1]})
    with pytest.raises(ValueError, match="stack_types"):
        build_forecaster("nbeats", "n", WindowSpec(24, 6), {"stack_types": ["fourier"]})


@pytest.mark.parametrize("family", ZOO)
def test_quantile_heads_are_monotone_and_learn(family, tmp_path):
    f, history, values = _fit(family, epochs=3, options={"quantiles": [0.1, 0.9]})
    q = f.predict(_x(values))
    assert q.shape == (3, 6, 3) and (np.diff(q, axis=-1) >= 0).all()
    assert history["loss"][-1] < history["loss"][0]
    g = load_forecaster(f.save(tmp_path / family))
    np.testing.assert_allclose(g.predict(_x(values)), q, rtol=1e-5, atol=1e-5)


def _panel():
    df = _tiny()
    return df.assign(temp=np.random.default_rng(1).normal(size=len(df)))


SPEC = CovariateSpec(static=("kind",), past=("temp",), future=("promo",),
                     categorical=("kind",), id_embedding=3)


@pytest.mark.parametrize("family", ["nhits", "tide", "tsmixer"])
def test_every_covariate_kind_is_used(family, tmp_path):
    df = _panel()
    predictor = _fit_with_covariates(df, SPEC, family, options=SMALL[family])
    names = predictor.forecaster.input_names
    assert names == ["y", "past", "future", "static_cat", "series"]
    future = pd.DataFrame({"unique_id": np.repeat(["s0", "s1", "s2"], 4),
                           "ds": np.tile(np.arange(61, 65), 3), "promo": 0.0,
                           "kind": np.repeat(["even", "odd", "even"], 4)})
    frame = pd.concat([df, future.assign(y=np.nan)], ignore_index=True)
    fc = predictor.predict(frame)
    assert np.isfinite(fc["yhat"]).all() and len(fc) == 12
    for column, value in (("promo", 5.0), ("temp", 3.0)):  # each input moves the forecast
        changed = frame.copy()
        rows = changed["y"].isna() if column == "promo" else changed["ds"].between(50, 60)
        changed.loc[rows, column] = value
        assert not np.allclose(predictor.predict(changed)["yhat"], fc["yhat"]), column
    again = type(predictor).load(predictor.save(tmp_path / "b"))
    pd.testing.assert_frame_equal(again.predict(frame), fc)


def test_tsmixer_builds_the_covariate_variant_only_with_covariates():
    spec = WindowSpec(24, 6)
    plain = build_forecaster("tsmixer", "t", spec, SMALL["tsmixer"]).build()
    ext = build_forecaster("tsmixer", "t", spec, SMALL["tsmixer"],
                           InputSpec(n_future=1, n_static=2)).build()
    assert "joined" not in {layer.name for layer in plain.layers}
    assert {"joined", "history_mixing_static"} <= {layer.name for layer in ext.layers}


def test_nbeats_reads_the_target_only():
    """N-BEATS has no covariates in the paper: declared ones are not inputs of its network."""
    f = build_forecaster("nbeats", "n", WindowSpec(12, 4), SMALL["nbeats"],
                         InputSpec(n_past=1, n_future=2, n_static=1, n_series=4,
                                   id_embedding=2))
    assert f.input_names == ["y"] and not f.inputs.any
    predictor = _fit_with_covariates(_panel(), SPEC, "nbeats", options=SMALL["nbeats"])
    assert predictor.forecaster.input_names == ["y"]


def test_zoo_round_trips_in_a_fresh_process(tmp_path):
    """The fixed-basis layers, DeepAR's lagged target and TFT's attention load with
    safe_mode=True in a process that only imports deepcast, and predict the same (DeepAR:
    the same seeded sample paths)."""
    fitted = {name: _fit(name, epochs=1, options=opts)
              for name, opts in (("nhits", {}), ("nbeats", {"stack_types": ["trend",
                                                                           "seasonality"]}),
                                 ("deepar", {}), ("tft", {}))}
    x = _x(fitted["nhits"][2])
    np.save(tmp_path / "x.npy", x)
    paths = [str(f.save(tmp_path / name)) for name, (f, _, _) in fitted.items()]
    code = ("import json, sys, numpy as np\n"
            "from deepcast.forecasting.models import load_forecaster\n"
            "x = np.load(sys.argv[1])\n"
            "print(json.dumps([load_forecaster(p).predict(x).tolist() for p in sys.argv[2:]]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.npy"), *paths],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    for got, (f, _, _) in zip(fresh, fitted.values(), strict=True):
        np.testing.assert_allclose(np.array(got), f.predict(x), rtol=1e-6, atol=1e-6)
