"""Covariates, embeddings and short-series padding through the real pipeline: train ->
registry -> forecast, on real data (Victoria electricity with temperature and holidays;
M3 monthly with a static domain category and series shorter than the window)."""

from __future__ import annotations

import pandas as pd
import pytest

from deepcast.features.errors import DataError
from deepcast.flows.flows import batch_forecast, train_pipeline
from tests.conftest import DATA
from tests.integration.conftest import write_pipeline

pytestmark = pytest.mark.integration

VIC = DATA / "vic_elec_small.csv"
M3S = DATA / "m3_monthly_static.csv"


def _vic_pipeline(tmp_path):
    return write_pipeline(
        tmp_path, VIC, name="it-vic",
        data={"path": VIC.name, "freq": "30min", "season_length": 48,
              "past": ["temperature"], "future": ["holiday"]},
        features={"lookback": 96, "horizon": 48},
        models=[{"type": "mlp", "hidden_size": 32}],  # the champion uses the covariates
        evaluation={"test_size": 48, "metric": "mase"})


def test_future_covariates_are_required_and_used(prefect_harness, store, tmp_path):
    pipeline = _vic_pipeline(tmp_path)
    summary = train_pipeline(pipeline=str(pipeline))
    assert summary.best == "mlp"  # registered as challenger (the gate may keep it there)

    # no future rows: the forecast is refused, naming the series and the dates
    out = tmp_path / "fc.csv"
    with pytest.raises(DataError, match=r"holiday.*VIC: 2012-02-06, 2012-02-06 00:30:00"):
        batch_forecast(pipeline=str(pipeline), output=str(out), model="challenger")
    assert not out.exists()

    # with a --future file for the next 48 half-hours (and one incomplete: refused)
    dates = pd.date_range("2012-02-06", periods=48, freq="30min")
    future = pd.DataFrame({"unique_id": "VIC", "ds": dates, "holiday": 0})
    future.iloc[:-1].to_csv(tmp_path / "short_future.csv", index=False)
    future.to_csv(tmp_path / "future.csv", index=False)
    with pytest.raises(DataError, match=r"1 forecast step\(s\) of 1 series: VIC: "
                                        r"2012-02-06 23:30:00"):
        batch_forecast(pipeline=str(pipeline), output=str(out), model="challenger",
                       future=str(tmp_path / "short_future.csv"))
    result = batch_forecast(pipeline=str(pipeline), output=str(out), model="challenger",
                            future=str(tmp_path / "future.csv"))
    fc = pd.read_csv(out)
    assert result.rows == 48 and fc["ds"].iloc[0] == "2012-02-06 00:00:00"
    assert fc["yhat"].notna().all()


def test_static_embeddings_and_padded_short_series(prefect_harness, store, tmp_path):
    pipeline = write_pipeline(
        tmp_path, M3S, name="it-m3s",
        data={"path": M3S.name, "freq": 1, "season_length": 12, "static": ["category"],
              "short_series": "pad"},
        features={"lookback": 36, "horizon": 6, "id_embedding": 4},
        models=[{"type": "seasonal_naive"}, {"type": "gru", "units": 8}],
        evaluation={"test_size": 6, "metric": "mase"})
    summary = train_pipeline(pipeline=str(pipeline))
    # 53-point telecom series < lookback 36 + 6 + 6 + 6 = 54: kept and padded, not dropped
    assert summary.dropped_series == {} and summary.n_series == 16
    out = tmp_path / "fc.parquet"
    batch_forecast(pipeline=str(pipeline), output=str(out), model="challenger")
    fc = pd.read_parquet(out)
    assert fc["unique_id"].nunique() == 16 and fc["yhat"].notna().all()
    # a series unseen in training, with an unseen category, still forecasts
    new = pd.read_csv(M3S).query("unique_id == 'N2801'").assign(unique_id="NEW",
                                                                 category="unheard-of")
    new.to_csv(tmp_path / "new.csv", index=False)
    batch_forecast(pipeline=str(pipeline), output=str(out), data=str(tmp_path / "new.csv"))
    assert pd.read_parquet(out)["unique_id"].unique().tolist() == ["NEW"]
