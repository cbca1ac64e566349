"""Rolling-origin backtest: cut-offs by hand, batched windows aligned with the data, no
leakage of points after a cut-off into fitting or forecasting, conformal coverage."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.scalers import SeriesScaler
from deepcast.features.schema import ColumnSpec
from deepcast.features.windows import panel_from_frame
from deepcast.forecasting import conformal
from deepcast.forecasting.base import WindowSpec
from deepcast.forecasting.models import build_forecaster
from deepcast.forecasting.predictor import Predictor
from deepcast.pipelines.backtest import backtest_cutoffs, refit_schedule, run_backtest
from deepcast.pipelines.config import load_config, parse_config
from deepcast.pipelines.ingest import ingest
from deepcast.pipelines.validate import validate_long_frame
from tests.conftest import DATA, ROOT, pipeline_dict


def test_cutoffs_by_hand():
    # the last window ends at each series' last point; earlier ones step back by `step`
    cuts = backtest_cutoffs(np.array([20, 15]), n_windows=3, step=2, horizon=4)
    assert cuts.tolist() == [[12, 14, 16], [7, 9, 11]]


def test_refit_schedule():
    assert refit_schedule(3, False) == [[0, 1, 2]]
    assert refit_schedule(3, True) == [[0], [1], [2]]
    assert refit_schedule(5, 2) == [[0, 1], [2, 3], [4]]


def test_sliding_window_keeps_the_last_points_before_each_cutoff():
    from deepcast.pipelines.backtest import history_before

    df = pd.DataFrame({"unique_id": ["a"] * 6 + ["b"] * 4, "ds": list(range(6)) + list(range(4)),
                       "y": np.arange(10.0)})
    expanding = history_before(df, np.array([5, 3]))
    assert expanding["ds"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    sliding = history_before(df, np.array([5, 3]), size=2)
    assert sliding["ds"].tolist() == [3, 4, 1, 2]
    with pytest.raises(Exception, match="train_size"):
        parse_config({**pipeline_dict(DATA / "aus_retail_small.csv"),
                      "evaluation": {"test_size": 6, "backtest": {"window": "sliding"}}})


def test_batched_windows_are_aligned():
    df = pd.DataFrame({"unique_id": ["a"] * 10 + ["b"] * 8,
                       "ds": list(range(1, 11)) + list(range(1, 9)),
                       "y": [float(v) for v in range(100, 110)] + [float(v) for v in range(8)]})
    panel = panel_from_frame(df)
    f = build_forecaster("naive", "naive", WindowSpec(3, 2, 1), {})
    p = Predictor(f, SeriesScaler().fit(panel), ColumnSpec(freq=1))
    fc = p.predict_windows(df, np.array([[5, 7], [4, 6]]))
    a0 = fc[(fc["unique_id"] == "a") & (fc["window"] == 0)]
    # cut 5: history is ds 1..5 (y 100..104); forecasts ds 6, 7 with the last value 104
    assert a0["cutoff"].tolist() == [5, 5] and a0["ds"].tolist() == [6, 7]
    assert a0["y"].tolist() == [105.0, 106.0] and a0["yhat"].tolist() == pytest.approx([104.0] * 2)
    b1 = fc[(fc["unique_id"] == "b") & (fc["window"] == 1)]
    assert b1["ds"].tolist() == [7, 8] and b1["yhat"].tolist() == pytest.approx([5.0, 5.0])
    assert b1["h"].tolist() == [1, 2]


def _cfg(refit, **models):
    raw = pipeline_dict(DATA / "aus_retail_small.csv",
                        models=[{"type": "mlp", "hidden_size": 8}, {"type": "mean"}],
                        training={"max_epochs": 1, "batch_size": 64, "seed": 0})
    raw["evaluation"] = {"test_size": 6, "backtest": {"n_windows": 2, "step": 6,
                                                      "refit": refit}}
    cfg = parse_config(raw)
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    return cfg, clean


@pytest.mark.parametrize("refit", [True, False])
def test_points_after_a_cutoff_never_reach_fitting_or_forecasting(refit):
    """Black-box leakage test: blow up every value after the last cut-off. With refit, the
    scalers and weights fit for each cut-off and every window's forecasts must be unchanged;
    without refit the one fit precedes the first cut-off, and so likewise."""
    cfg, clean = _cfg(refit)
    base = run_backtest(clean, cfg)
    cuts = base.cutoffs
    pos = clean.groupby("unique_id").cumcount().to_numpy()
    after_last = pos >= np.repeat(cuts[:, -1], clean.groupby("unique_id").size().to_numpy())
    changed = clean.copy()
    changed.loc[after_last, "y"] = changed.loc[after_last, "y"] * 1000.0
    again = run_backtest(changed, cfg)
    for model in ("mlp", "mean", "seasonal_naive"):
        a, b = base.forecasts[model], again.forecasts[model]
        np.testing.assert_allclose(a["yhat"], b["yhat"], rtol=1e-6)
        assert not np.allclose(a["y"], b["y"])  # the truth did change
    assert base.summary["fits"].tolist()[1] == (2 if refit else 1)  # mlp


def test_conformal_calibration_uses_earlier_windows_only():
    """Window j's interval is calibrated on windows < j: blowing up the last window's truth
    leaves every earlier window's coverage as it was."""
    cfg, clean = _cfg(False)
    ev = cfg.evaluation.model_copy(update={"conformal": [80], "backtest": cfg.evaluation
                                           .backtest.model_copy(update={"n_windows": 3})})
    cfg = cfg.model_copy(update={"evaluation": ev, "models": [m for m in cfg.models
                                                              if m.type == "mean"]})
    base = run_backtest(clean, cfg)
    pos = clean.groupby("unique_id").cumcount().to_numpy()
    sizes = clean.groupby("unique_id").size().to_numpy()
    after_last = pos >= np.repeat(base.cutoffs[:, -1], sizes)
    changed = clean.copy()
    changed.loc[after_last, "y"] *= 1000.0
    again = run_backtest(changed, cfg)
    col = "conformal_coverage_80"
    a = base.per_window.query("model == 'mean' and window < 2")[col].to_numpy()
    b = again.per_window.query("model == 'mean' and window < 2")[col].to_numpy()
    np.testing.assert_array_equal(a, b)
    last = again.per_window.query("model == 'mean' and window == 2")[col]
    assert (last == 0).all()  # the blown-up truth falls outside every interval


def test_metrics_and_skill_table():
    cfg, clean = _cfg(False)
    res = run_backtest(clean, cfg)
    assert set(res.summary["model"]) == {"seasonal_naive", "mlp", "mean"}
    ref = res.summary.set_index("model").loc["seasonal_naive"]
    assert ref["skill_mase"] == 0.0
    assert {"mae", "rmse", "mape", "smape", "mase", "rmsse"} <= set(res.per_window.columns)
    # per model x window x series rows: 3 models x 2 windows x 6 series
    assert len(res.per_window) == 3 * 2 * 6


def test_conformal_calibration_by_hand():
    resid = np.array([[1.0, -2.0], [2.0, 4.0], [-3.0, 6.0], [4.0, 8.0]])
    scale = np.array([1.0, 2.0, 1.0, 2.0])
    # normalised |r|: step 1 -> 1, 1, 3, 2; step 2 -> 2, 2, 6, 4
    table = conformal.calibrate(resid, scale, [50]).table
    # rank ceil((4 + 1) * 0.5) = 3 of the sorted scores
    assert table == {"50": [2.0, 4.0]}
    bands = conformal.apply(np.array([[10.0, 10.0]]), np.array([0.5]), table)
    assert bands["yhat_lo_50"].tolist() == [[9.0, 8.0]]
    assert bands["yhat_hi_50"].tolist() == [[11.0, 12.0]]


@pytest.mark.slow
def test_conformal_intervals_reach_nominal_coverage_on_real_data():
    """150 Australian retail series, 5 yearly cut-offs: each window's intervals are
    calibrated on the earlier windows only and must cover close to the nominal share."""
    cfg = load_config(ROOT / "pipelines" / "demo.yaml")
    ev = cfg.evaluation.model_copy(update={"conformal": [80, 95], "backtest":
                                           cfg.evaluation.backtest.model_copy(
                                               update={"n_windows": 5, "step": 12})})
    cfg = cfg.model_copy(update={"evaluation": ev, "models": [m for m in cfg.models
                                                              if m.type == "naive"]})
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    res = run_backtest(clean, cfg)
    naive = res.summary.set_index("model").loc["naive"]
    assert 0.75 <= naive["conformal_coverage_80"] <= 0.85
    assert 0.92 <= naive["conformal_coverage_95"] <= 0.98


def _ensemble_cfg(n_windows, refit, ensemble):
    raw = pipeline_dict(DATA / "aus_retail_small.csv",
                        models=[{"type": "naive"}, {"type": "mean"},
                                {"type": "seasonal_naive"}],
                        ensemble=ensemble,
                        training={"max_epochs": 1, "batch_size": 64, "seed": 0})
    raw["evaluation"] = {"test_size": 6, "backtest": {"n_windows": n_windows, "step": 6,
                                                      "refit": refit}}
    cfg = parse_config(raw)
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    return cfg, clean


ENSEMBLES = [
    {"name": "avg", "method": "mean", "members": ["naive", "mean"]},
    {"name": "med", "method": "median", "members": ["naive", "mean", "seasonal_naive"]},
    {"name": "wtd", "method": "weighted", "members": ["naive", "mean", "seasonal_naive"]},
    {"name": "stk", "method": "stacking", "members": ["naive", "seasonal_naive"]},
    {"name": "pick", "method": "greedy", "members": ["naive", "mean", "seasonal_naive"]},
    {"name": "bag", "method": "bagging", "n_members": 2,
     "model": {"type": "mlp", "hidden_size": 8}},
]


def test_ensembles_are_backtested_on_the_same_cutoffs_without_leakage():
    """Every ensemble gets a row; members (and the bagged fits) are refit per cut-off with
    refit: true, and weights come from before each cut-off: blowing up every value after
    the last cut-off moves no ensemble forecast."""
    cfg, clean = _ensemble_cfg(2, True, ENSEMBLES)
    base = run_backtest(clean, cfg)
    summary = base.summary.set_index("model")
    assert {"avg", "med", "wtd", "stk", "pick", "bag"} <= set(summary.index)
    assert not base.skipped
    assert summary.loc["wtd", "type"] == "ensemble-weighted"
    assert summary.loc["bag", "fits"] == 2 * 2  # 2 seeds x 2 refit cut-offs
    assert np.isfinite(summary["mase"]).all()
    fc = base.forecasts
    np.testing.assert_allclose(fc["avg"]["yhat"],
                               (fc["naive"]["yhat"] + fc["mean"]["yhat"]) / 2)
    members = np.stack([fc[m]["yhat"] for m in ("naive", "mean", "seasonal_naive")])
    for convex in ("wtd", "pick"):  # convex combinations of the members
        assert (fc[convex]["yhat"] >= members.min(axis=0) - 1e-9).all()
        assert (fc[convex]["yhat"] <= members.max(axis=0) + 1e-9).all()
    assert len(base.per_window.query("model == 'stk'")) == 2 * 6

    pos = clean.groupby("unique_id").cumcount().to_numpy()
    sizes = clean.groupby("unique_id").size().to_numpy()
    changed = clean.copy()
    changed.loc[pos >= np.repeat(base.cutoffs[:, -1], sizes), "y"] *= 1000.0
    again = run_backtest(changed, cfg)
    for name in ("avg", "med", "wtd", "stk", "bag"):
        np.testing.assert_allclose(base.forecasts[name]["yhat"],
                                   again.forecasts[name]["yhat"], rtol=1e-6)


def test_an_ensemble_that_cannot_be_backtested_is_named_with_the_reason():
    """8 windows leave room for the models but not for the inner backtest that weighs a
    weighted ensemble before the first cut-off: it is skipped, said so, the rest scored."""
    from deepcast.pipelines.backtest import summary_notes

    cfg, clean = _ensemble_cfg(8, False, ENSEMBLES[:1] + ENSEMBLES[2:3])
    res = run_backtest(clean, cfg)
    assert "avg" in set(res.summary["model"]) and "wtd" not in set(res.summary["model"])
    assert "no series is long enough" in res.skipped["wtd"]
    assert any(n.startswith("ensemble wtd skipped: weighted weights need an inner backtest")
               for n in summary_notes(res))


def test_a_single_window_is_said_to_be_one_window():
    from deepcast.pipelines.backtest import summary_notes

    cfg, clean = _ensemble_cfg(1, False, [])
    res = run_backtest(clean, cfg)
    assert res.n_windows == 1
    assert any("rest on one window" in n for n in summary_notes(res))
    cfg, clean = _ensemble_cfg(2, False, [])
    assert summary_notes(run_backtest(clean, cfg)) == []


def test_backtest_options_on_the_command_line():
    from deepcast.features.errors import ConfigError
    from deepcast.flows.parser import build_parser
    from deepcast.pipelines.config import override_backtest

    parse = build_parser().parse_args
    args = parse(["backtest", "p.yaml", "--n-windows", "1", "--step", "3", "--refit", "2"])
    assert (args.n_windows, args.step, args.refit) == (1, 3, 2)
    assert parse(["backtest", "p.yaml", "--refit", "True"]).refit is True
    assert parse(["backtest", "p.yaml", "--refit", "false"]).refit is False
    defaults = parse(["backtest", "p.yaml"])
    assert (defaults.n_windows, defaults.step, defaults.refit) == (None, None, None)
    for bad in (["--refit", "0"], ["--refit", "sometimes"], ["--n-windows", "0"],
                ["--step", "x"]):
        with pytest.raises(SystemExit) as exit_:
            parse(["backtest", "p.yaml", *bad])
        assert exit_.value.code == 2

    cfg, _ = _cfg(False)
    over = override_backtest(cfg, n_windows=1, refit=True)
    assert (over.evaluation.backtest.n_windows, over.evaluation.backtest.refit,
            over.evaluation.backtest.step) == (1, True, 6)
    assert override_backtest(cfg) is cfg
    # the bands stay calibrated on as many windows as train's (2 windows + 1 holdout origin)
    assert cfg.calibration_windows == 3 and over.calibration_windows == 3
    assert override_backtest(cfg, n_windows=40).calibration_windows == 3
    with pytest.raises(ConfigError, match="evaluation.backtest.refit"):
        override_backtest(cfg, refit=0)


def test_conformal_coverage_uses_only_residuals_seen_before_each_cutoff():
    """With cut-offs closer than the horizon, an earlier window's last steps fall on the
    next window's own dates: its bands must not be calibrated on them (a helper's trial saw
    80 % bands cover 89 % with step 3, horizon 6). Window 0's second step misses by 50 on
    the date window 1 forecasts first; window 1 misses by 10 at both steps."""
    from deepcast.pipelines.backtest import BandScoring, score_windows

    n, k, h = 30, 2, 2
    y, yhat = np.zeros((n, k, h)), np.zeros((n, k, h))
    yhat[:, 0, 0] = np.random.default_rng(0).uniform(-1, 1, n)
    yhat[:, 0, 1], yhat[:, 1, :] = 50.0, 10.0
    fc = pd.DataFrame({"unique_id": np.repeat(np.arange(n), k * h),
                       "window": np.tile(np.repeat(np.arange(k), h), n),
                       "h": np.tile(np.arange(1, h + 1), n * k),
                       "y": y.ravel(), "yhat": yhat.ravel()})
    ones = np.ones((n, k))

    def covered(step, frame=fc):
        return score_windows(frame, np.arange(n), ones, ones, h,
                             bands=BandScoring((80,), step))[1]["conformal_coverage_80"]

    assert covered(None) == 0.5  # step = horizon: window 0 is wholly in the past
    # step 1: only window 0's first step was observed by window 1's cut-off; window 1's
    # second step has no band yet (not scored), its first misses the 1-wide band
    assert covered(1) == 0.0
    # window 1's first step on target: covered; its second, without a band, is not a miss
    on_target = fc.assign(yhat=np.where((fc["window"] == 1) & (fc["h"] == 1), 0.0, fc["yhat"]))
    assert covered(1, on_target) == 1.0


def test_conformal_coverage_calibrates_on_the_last_windows_as_train_does():
    """Errors are not exchangeable over years: bands calibrated on every earlier window
    carry an old turbulent window's width forever. With ``calibration_windows`` each window
    is calibrated on its last k windows only. Window 0 misses by 100, window 1 by at most 1,
    window 2 by 5."""
    from deepcast.pipelines.backtest import BandScoring, score_windows

    n, k = 30, 3
    rng = np.random.default_rng(0)
    yhat = np.stack([np.full(n, 100.0), rng.uniform(-1, 1, n), np.full(n, 5.0)], axis=1)
    fc = pd.DataFrame({"unique_id": np.repeat(np.arange(n), k),
                       "window": np.tile(np.arange(k), n), "h": 1,
                       "y": 0.0, "yhat": yhat.ravel()})
    ones = np.ones((n, k))

    def covered(last):
        table, means = score_windows(fc, np.arange(n), ones, ones, 1,
                                     bands=BandScoring((80,), None, last))
        return means["conformal_coverage_80"], table

    everything, _ = covered(None)  # window 2's band is window 0's: 100 wide, covers 5
    assert everything == 1.0
    last_one, table = covered(1)  # window 2's band is window 1's: 1 wide, misses 5
    assert last_one == 0.5
    assert table.groupby("window")["conformal_coverage_80"].mean().tolist()[1:] == [1.0, 0.0]
    assert covered(2)[0] == 1.0 and covered(1000)[0] == 1.0
