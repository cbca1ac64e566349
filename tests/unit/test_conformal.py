"""Conformal levels and their finite-sample rank: a level with too few residuals is left
out and named, never given the largest residual as a band shared with every other level."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepcast.forecasting import conformal


@pytest.mark.parametrize(("level", "n"), [(50, 1), (80, 4), (90, 9), (95, 19), (97.5, 39),
                                          (99, 99)])
def test_needed_is_the_fewest_residuals_whose_rank_exists(level, n):
    assert conformal.needed(level) == n
    assert conformal.rank(n, level) <= n
    assert n == 1 or conformal.rank(n - 1, level) > n - 1


def test_one_residual_per_step_leaves_both_levels_out_and_says_why():
    cal = conformal.calibrate(np.array([[1.0, -2.0, 3.0]]), np.array([1.0]), [80, 95])
    assert cal.table == {}
    assert cal.left_out == {"80": (1, 4), "95": (1, 19)}
    notes = cal.notes(" (calibrated on the holdout)")
    assert notes[0].startswith("conformal 80 %: left out (calibrated on the holdout): "
                               "1 calibration residual per horizon step, 4 needed")
    assert "19 needed" in notes[1]


def test_a_level_is_kept_once_it_has_enough_residuals():
    rng = np.random.default_rng(0)
    resid, scale = rng.normal(size=(6, 3)), np.ones(6)
    cal = conformal.calibrate(resid, scale, [80, 95])
    assert set(cal.table) == {"80"} and cal.left_out == {"95": (6, 19)}
    # rank ceil(7 * 0.8) = 6 of 6: the largest |residual| per step
    assert cal.table["80"] == pytest.approx(np.abs(resid).max(axis=0).tolist())
    resid = rng.normal(size=(19, 3))
    cal = conformal.calibrate(resid, np.ones(19), [80, 95])
    assert set(cal.table) == {"80", "95"} and not cal.left_out
    s = np.sort(np.abs(resid), axis=0)
    assert cal.table["80"] == pytest.approx(s[15].tolist())  # rank ceil(20 * 0.8) = 16
    assert cal.table["95"] == pytest.approx(s[18].tolist())  # rank ceil(20 * 0.95) = 19


@pytest.mark.parametrize("n", range(1, 40))
def test_two_kept_levels_with_different_ranks_never_share_a_band(n):
    """What went wrong before: the rank was capped at n, so 80 % and 95 % both took the
    largest residual whenever n < 19."""
    resid = np.random.default_rng(n).normal(size=(n, 2))
    cal = conformal.calibrate(resid, np.ones(n), [80, 95])
    if {"80", "95"} <= set(cal.table) and conformal.rank(n, 80) != conformal.rank(n, 95):
        assert cal.table["80"] != cal.table["95"]
    for level in ("80", "95"):
        assert (level in cal.table) == (n >= conformal.needed(float(level)))
        assert (level in cal.table) != (level in cal.left_out)


def test_steps_without_residuals_do_not_count_as_too_few():
    """Steps the holdout never reaches (NaN) are filled later; the thinnest reached step
    decides."""
    resid = np.full((5, 3), np.nan)
    resid[:, 0] = [1.0, 2.0, 3.0, 4.0, 5.0]
    cal = conformal.calibrate(resid, np.ones(5), [80])
    assert cal.table["80"][0] == 5.0 and np.isnan(cal.table["80"][1:]).all()


def test_a_model_calibrated_on_too_few_residuals_forecasts_without_that_level(tmp_path):
    """6 real series, holdout = horizon: 6 residuals per step, enough for 80 %, not for 95 %.
    The predictor carries the note through its saved bundle; a bundle saved before notes
    existed loads with none."""
    import pandas as pd

    from deepcast.features.schema import ColumnSpec, coerce_long_frame, sort_long_frame
    from deepcast.forecasting.predictor import BUNDLE_FILE, Predictor
    from deepcast.pipelines.config import ENTRY_MODELS, parse_config
    from deepcast.pipelines.modelling import evaluate, fit_model, prepare, training_settings
    from tests.conftest import DATA, pipeline_dict

    cfg = parse_config(pipeline_dict(DATA / "aus_retail_small.csv", evaluation={
        "test_size": 6, "metric": "mase", "plots": False, "conformal": [80, 95]}))
    df = sort_long_frame(coerce_long_frame(pd.read_csv(cfg.data.path), ColumnSpec(
        "unique_id", "ds", "y", "MS"))[["unique_id", "ds", "y"]])
    prep = prepare(df, cfg)
    predictor, _, _ = fit_model(ENTRY_MODELS["seasonal_naive"](type="seasonal_naive"), prep,
                                training_settings(cfg))
    evaluate(predictor, prep, cfg.evaluation.conformal)
    assert set(predictor.conformal) == {"80"}
    assert predictor.conformal_notes == [
        "conformal 95 %: left out (calibrated on the holdout): 6 calibration residuals per "
        "horizon step, 19 needed for its coverage guarantee; add series or lengthen "
        "evaluation.test_size (each further horizon of holdout adds one residual per series "
        "and step)"]
    fc = predictor.predict(df)
    assert {"yhat_lo_80", "yhat_hi_80"} <= set(fc.columns)
    assert not {"yhat_lo_95", "yhat_hi_95"} & set(fc.columns)

    loaded = Predictor.load(predictor.save(tmp_path / "bundle"))
    assert loaded.conformal_notes == predictor.conformal_notes
    meta = json.loads((tmp_path / "bundle" / BUNDLE_FILE).read_text())
    del meta["conformal_notes"]  # as written before this field existed
    (tmp_path / "bundle" / BUNDLE_FILE).write_text(json.dumps(meta))
    assert Predictor.load(tmp_path / "bundle").conformal_notes == []

    # the bands scale each series by its recent volatility; a bundle saved before that rule
    # scales them as its table was calibrated: by the whole history's seasonal naive MAE
    from deepcast.features.windows import panel_from_frame
    from deepcast.forecasting.metrics import seasonal_scale

    panel, h = panel_from_frame(df), predictor.horizon
    assert loaded.conformal_scale == conformal.RECENT
    del meta["conformal_scale"]
    (tmp_path / "bundle" / BUNDLE_FILE).write_text(json.dumps(meta))
    old = Predictor.load(tmp_path / "bundle")
    assert old.conformal_scale == conformal.HISTORY
    for model, scale in ((loaded, conformal.band_scale(panel, panel.lengths, 12, h)),
                         (old, seasonal_scale(panel, panel.lengths, 12))):
        out = model.predict(df)
        half = (out["yhat_hi_80"] - out["yhat"]).to_numpy().reshape(len(scale), h)
        np.testing.assert_allclose(half, scale[:, None] * np.asarray(model.conformal["80"]),
                                   rtol=1e-5)


def test_the_band_scale_is_the_recent_volatility_of_each_series():
    """The seasonal naive MAE of the last two seasons (at least a horizon) before the origin;
    the whole history's where the recent stretch is flat, so no band collapses to zero."""
    from deepcast.features.windows import Panel

    calm, flat = np.tile([0.0, 1.0], 20), np.concatenate([np.tile([0.0, 8.0], 10), np.ones(8)])
    turbulent_then_calm = np.concatenate([np.tile([0.0, 9.0], 10), calm[:8]])
    values = np.concatenate([calm, turbulent_then_calm, flat]).astype(np.float32)
    panel = Panel(np.array(["a", "b", "c"]), values, np.array([0, 40, 68, 96]),
                  np.zeros(3, dtype=np.int64))
    assert conformal.recent_span(1, 3) == 3 and conformal.recent_span(12, 6) == 24
    scale = conformal.band_scale(panel, panel.lengths, 1, 4)  # last 4 lag-1 differences
    # a: |diff| 1 throughout; b: 9 in its turbulent past, 1 lately; c: 0 lately -> history
    history = conformal.band_scale(panel, panel.lengths, 1, 4, conformal.HISTORY)
    assert scale[0] == 1.0 and scale[1] == 1.0 and history[1] > 5
    assert scale[2] == history[2] > 0
    cut = conformal.cutoff_band_scales(panel, np.array([[20, 40], [20, 28], [20, 28]]), 1, 4)
    assert cut[1].tolist() == [9.0, 1.0]
