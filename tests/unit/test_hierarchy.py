"""Hierarchies: aggregates built from the bottom series, and reconciled forecasts that add
up, checked against hierarchicalforecast's own reconcile on the same real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import DataError
from deepcast.features.hierarchy import LEVEL, TOTAL, HierarchySpec, aggregate, structure
from deepcast.forecasting.reconcile import METHODS, Reconciler, fit_reconciler
from tests.conftest import DATA

NESTED = HierarchySpec(("state", "industry"), "|", ((), ("state",), ("state", "industry")))
GROUPED = HierarchySpec(("state", "industry"), "|",
                        ((), ("state",), ("industry",), ("state", "industry")))


def _retail(n_states=3, n_industries=3, length=40) -> pd.DataFrame:
    """Real turnover series (aus_retail slice) given hierarchical ids state|industry."""
    real = pd.read_csv(DATA / "aus_retail_small.csv", parse_dates=["ds"])
    ids = sorted(real["unique_id"].unique())
    frames = []
    for i in range(n_states):
        for j in range(n_industries):
            s = real[real["unique_id"] == ids[(i * n_industries + j) % len(ids)]].tail(length)
            frames.append(s.assign(unique_id=f"S{i}|I{j}", y=s["y"] * (1 + 0.1 * i)))
    return pd.concat(frames, ignore_index=True)[["unique_id", "ds", "y"]]


def test_aggregates_are_sums_of_their_bottom_series_per_ds():
    df = _retail()
    out = aggregate(df, GROUPED)
    assert set(out[LEVEL]) == {TOTAL, "state", "industry", "state/industry"}
    wide = out.pivot(index="ds", columns="unique_id", values="y")
    bottom = [c for c in wide.columns if "|" in c]
    assert np.allclose(wide[TOTAL], wide[bottom].sum(axis=1))
    assert np.allclose(wide["S1"], wide[[c for c in bottom if c.startswith("S1|")]].sum(axis=1))
    assert np.allclose(wide["I2"], wide[[c for c in bottom if c.endswith("|I2")]].sum(axis=1))
    s = structure(out, GROUPED)
    assert s.S.shape == (1 + 3 + 3 + 9, 9) and list(s.levels[:1]) == [TOTAL]
    truth = wide[list(s.ids)].to_numpy().T  # (series, T) in S order
    assert np.allclose(s.S @ truth[-9:], truth)  # S maps the bottom to every series
    assert {k: len(v) for k, v in s.tags().items()} == {TOTAL: 1, "state": 3, "industry": 3,
                                                       "state/industry": 9}
    again = type(s).from_dict(json.loads(json.dumps(s.to_dict())))
    assert np.array_equal(again.S, s.S) and list(again.ids) == list(s.ids)


def test_bad_ids_and_covariates_are_named():
    df = _retail().assign(unique_id=lambda d: d["unique_id"].str.replace("|", "-"))
    with pytest.raises(DataError, match="do not have 2 parts"):
        aggregate(df, NESTED)
    with pytest.raises(DataError, match="covariate columns are not aggregated"):
        aggregate(_retail().assign(price=1.0), NESTED)
    df = _retail()
    stale = df.drop(df.index[df["unique_id"] == "S0|I1"][-3:])  # ends 3 months early
    with pytest.raises(DataError, match=r"1 bottom series end before the others .*S0\|I1"):
        aggregate(stale, NESTED)


def _base_forecasts(s, steps=6, seed=0):
    """Incoherent base forecasts: the truth's last values, noised per series."""
    rng = np.random.default_rng(seed)
    bottom = rng.uniform(50, 150, size=(s.n_bottom, steps))
    return s.S @ bottom * rng.normal(1, 0.05, size=(len(s.ids), steps))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_forecasts_that_add_up(method):
    spec = NESTED
    s = structure(aggregate(_retail(), spec), spec)
    yhat = _base_forecasts(s)
    residuals = np.random.default_rng(1).normal(size=(len(s.ids), 30)) * 5
    rec = fit_reconciler(method, s, residuals)
    out = rec.reconcile(yhat)
    assert np.allclose(s.S @ out[-s.n_bottom:], out, atol=1e-6)  # coherent
    assert not np.allclose(out, yhat)  # the base forecasts were not
    back = Reconciler.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert np.allclose(back.reconcile(yhat), out)
    if method == "bottom_up":
        assert np.allclose(out[-s.n_bottom:], yhat[-s.n_bottom:])


def test_shrink_without_residuals_falls_back_and_says_so():
    s = structure(aggregate(_retail(), NESTED), NESTED)
    rec = fit_reconciler("min_trace_shrink", s, None)
    assert rec.method == "min_trace_wls_struct" and "wls_struct" in rec.note


def test_apply_matches_hierarchicalforecast_reconcile_on_the_same_data():
    """deepcast's frame-level apply against the library's own HierarchicalReconciliation
    on the same base forecasts and summing matrix."""
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.methods import BottomUp, MinTrace, TopDown

    spec = NESTED
    s = structure(aggregate(_retail(), spec), spec)
    yhat = _base_forecasts(s, steps=4)
    dates = pd.date_range("2020-01-01", periods=4, freq="MS")
    fc = pd.DataFrame({"unique_id": np.repeat(s.ids, 4), "ds": np.tile(dates, len(s.ids)),
                       "yhat": yhat.ravel()})
    S_df = pd.DataFrame(s.S, columns=s.ids[-s.n_bottom:]).assign(unique_id=s.ids)
    S_df = S_df[["unique_id", *s.ids[-s.n_bottom:]]]
    tags = {k: s.ids[v] for k, v in s.tags().items()}
    lib = HierarchicalReconciliation([BottomUp(), MinTrace("ols"), MinTrace("wls_struct"),
                                      TopDown("forecast_proportions")]).reconcile(
        Y_hat_df=fc, tags=tags, S_df=S_df)
    lib = lib.set_index(["unique_id", "ds"])
    names = {"bottom_up": "yhat/BottomUp", "min_trace_ols": "yhat/MinTrace_method-ols",
             "min_trace_wls_struct": "yhat/MinTrace_method-wls_struct",
             "top_down": "yhat/TopDown_method-forecast_proportions"}
    for method, column in names.items():
        ours = fit_reconciler(method, s).apply(fc).set_index(["unique_id", "ds"])["yhat"]
        assert np.allclose(ours.to_numpy(), lib.loc[ours.index, column].to_numpy()), method


def test_apply_per_window_shifts_quantiles_with_the_point_forecast():
    s = structure(aggregate(_retail(), NESTED), NESTED)
    yhat = _base_forecasts(s, steps=3)
    fc = pd.DataFrame({"unique_id": np.repeat(s.ids, 3), "window": 0,
                       "h": np.tile([1, 2, 3], len(s.ids)), "yhat": yhat.ravel()})
    fc["yhat_q10"], fc["yhat_q90"] = fc["yhat"] - 5, fc["yhat"] + 5
    out = fit_reconciler("min_trace_ols", s).apply(fc, key=("window", "h"))
    assert np.allclose(out["yhat_q90"] - out["yhat"], 5)
    wide = out.pivot(index="unique_id", columns="h", values="yhat").loc[s.ids].to_numpy()
    assert np.allclose(s.S @ wide[-s.n_bottom:], wide)
    with pytest.raises(DataError, match="not in the forecast"):
        fit_reconciler("bottom_up", s).apply(fc[fc["unique_id"] != TOTAL])


def test_levels_from_columns_of_the_data():
    """The real aus_retail hierarchy: state and industry are columns, ids are the ABS
    series ids; aggregates carry '*' where they sum over a column."""
    from deepcast.features.hierarchy import ALL

    df = pd.read_csv(DATA / "aus_retail_hierarchy_small.csv", parse_dates=["ds"])
    spec = HierarchySpec(("state", "industry"), "/", ((), ("state",), ("state", "industry")),
                         in_id=False)
    out = aggregate(df, spec)
    assert set(out["unique_id"]) == {TOTAL, "Tasmania", "Victoria", *df["unique_id"]}
    vic = out[out["unique_id"] == "Victoria"]
    assert (vic["industry"] == ALL).all() and (vic["state"] == "Victoria").all()
    expected = df[df["state"] == "Victoria"].groupby("ds")["y"].sum()
    assert np.allclose(vic.set_index("ds")["y"], expected)
    s = structure(out, spec)
    wide = out.pivot(index="ds", columns="unique_id", values="y")[list(s.ids)].to_numpy().T
    assert np.allclose(s.S @ wide[-s.n_bottom:], wide)
    moved = df.copy()
    moved.loc[moved.index[0], "state"] = "Victoria" if moved["state"].iloc[0] != "Victoria" \
        else "Tasmania"
    with pytest.raises(DataError, match="change their state, industry"):
        aggregate(moved, spec)
    # an industry named like a state: two aggregate series would share the id "Victoria"
    # (a pandas MergeError deep in training before)
    across = ((), ("state",), ("industry",), ("state", "industry"))
    named = df.assign(industry=df["industry"].where(df["industry"] != df["industry"].iloc[0],
                                                    "Victoria"))
    with pytest.raises(DataError, match="'Victoria' \\(state and industry\\)"):
        aggregate(named, HierarchySpec(("state", "industry"), "/", across, in_id=False))


def test_a_backtest_reconciles_each_window_with_the_errors_before_it_only(tmp_path):
    """min_trace_shrink in a backtest: window j's covariance comes from the base errors of
    the steps observed before its first date. Changing the last window's truth changes no
    reconciled forecast; changing the first window's changes the later windows'. Every
    window adds up; the first one, with no errors before it, falls back and says so."""
    from deepcast.pipelines.backtest_levels import BacktestReconciler
    from deepcast.pipelines.config import parse_config
    from tests.conftest import pipeline_dict

    bottom = _retail()
    bottom.to_csv(tmp_path / "h.csv", index=False)
    cfg = parse_config(pipeline_dict(tmp_path / "h.csv", hierarchy={
        "separator": "|", "columns": ["state", "industry"], "method": "min_trace_shrink"}))
    df = aggregate(bottom, cfg.hierarchy.spec())
    ids = structure(df, cfg.hierarchy.spec()).ids
    dates = np.sort(df["ds"].unique())[-6:]  # 3 windows of 2 steps
    rng = np.random.default_rng(0)
    truth = df.set_index(["unique_id", "ds"])["y"]
    rows = [(uid, w, h + 1, dates[2 * w + h]) for uid in sorted(ids)
            for w in range(3) for h in range(2)]
    fc = pd.DataFrame(rows, columns=["unique_id", "window", "h", "ds"])
    fc["y"] = truth.loc[list(zip(fc["unique_id"], fc["ds"], strict=True))].to_numpy()
    fc["yhat"] = fc["y"] * rng.uniform(0.8, 1.2, len(fc))

    def reconciled(frame):
        rec = BacktestReconciler(df, cfg)
        return rec("linear", frame), rec.notes

    base, notes = reconciled(fc)
    assert notes == ["1 of 3 backtest windows (the first has none) had too few earlier "
                     "errors for min_trace_shrink's covariance and were reconciled with "
                     "min_trace_wls_struct: linear"]
    for _, window in base.groupby(["window", "ds"]):
        w = window.set_index("unique_id")["yhat"]
        assert np.isclose(w["total"], sum(w[i] for i in ids if "|" in i))
    last = fc.assign(y=np.where(fc["window"] == 2, fc["y"] * 3, fc["y"]))
    pd.testing.assert_frame_equal(reconciled(last)[0].drop(columns="y"),
                                  base.drop(columns="y"))
    first = fc.assign(y=np.where(fc["window"] == 0, fc["y"] * 3, fc["y"]))
    moved = reconciled(first)[0]
    assert np.allclose(moved.loc[moved["window"] == 0, "yhat"],
                       base.loc[base["window"] == 0, "yhat"])
    assert not np.allclose(moved.loc[moved["window"] == 2, "yhat"],
                           base.loc[base["window"] == 2, "yhat"])


def test_train_reconciles_the_selection_windows_as_it_serves():
    """The selection backtest's window forecasts are reconciled with the model's own
    reconciliation before they choose the model and calibrate its bands (as the holdout's
    are); a backtest missing a series of the hierarchy stays as it is."""
    from deepcast.forecasting.crossval import SpanBacktest
    from deepcast.pipelines.levels import reconciled_windows

    s = structure(aggregate(_retail(), NESTED), NESTED)
    rec = fit_reconciler("min_trace_ols", s)
    n, k, h = len(s.ids), 3, 2
    order = np.random.default_rng(2).permutation(n)  # the backtest's own series order
    f = np.stack([_base_forecasts(s, h, seed)[order] for seed in range(k)], axis=1)
    bt = SpanBacktest(np.zeros((n * k, h)), f.reshape(-1, h), np.ones(n * k), k, n,
                      s.ids[order])
    out = reconciled_windows(rec, bt).f.reshape(n, k, h)
    back = np.argsort(order)
    for w in range(k):
        window = out[back, w, :]  # S order
        assert np.allclose(s.S @ window[-s.n_bottom:], window)
        assert np.allclose(window, rec.reconcile(f[back, w, :]))
    partial = SpanBacktest(bt.y[k:], bt.f[k:], bt.scale[k:], k, n - 1, bt.ids[1:])
    assert reconciled_windows(rec, partial) is partial
