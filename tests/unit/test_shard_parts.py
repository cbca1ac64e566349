"""What the driver merges from shards (pipelines.shard_parts): the panel's covariate
encoder and numeric statistics, and the sums of the weighted quantile loss."""

import numpy as np
import pandas as pd
import pytest

from deepcast.features.covariates import CovariateEncoder, CovariateSpec
from deepcast.forecasting import metrics
from deepcast.pipelines.shard_parts import NumericStats, PartSummary, merge_encoders


def test_numeric_statistics_merge_exactly():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(3, 2, 50), rng.normal(-1, 5, 7), np.array([np.nan, 4.0])
    merged = NumericStats.of(a).merge(NumericStats.of(b)).merge(NumericStats.of(c))
    whole = np.concatenate([a, b, [4.0]])
    assert merged.n == 58
    assert merged.mean == pytest.approx(whole.mean(), rel=1e-12)
    assert np.sqrt(merged.m2 / merged.n) == pytest.approx(whole.std(), rel=1e-12)
    assert NumericStats.of(np.array([])).merge(NumericStats.of(a)) == NumericStats.of(a)


def _frame():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"unique_id": np.repeat(["a", "b", "c", "d"], 5),
                         "ds": np.tile(np.arange(5), 4), "y": rng.normal(size=20),
                         "kind": np.repeat(["x", "y", "x", "z"], 5),
                         "price": rng.normal(10, 3, 20)})


def test_merged_encoder_is_the_whole_panels():
    """Two shards' encoders merge into the one fit on every row: series codes in sorted
    order, the categories' union, the numeric scaling (to rounding)."""
    df = _frame()
    spec = CovariateSpec(static=("kind",), future=("price",), categorical=("kind",),
                         id_embedding=2)
    whole = CovariateEncoder(spec).fit(df)
    shards = [df[df["unique_id"].isin(ids)] for ids in (["a", "b"], ["c", "d"])]
    summaries = [PartSummary(i, None, pd.Series(dtype=object), encoder=CovariateEncoder(spec)
                             .fit(s), numeric={"price": NumericStats.of(s["price"]
                                                                        .to_numpy())})
                 for i, s in enumerate(shards)]
    merged = merge_encoders(summaries)
    assert merged.ids == whole.ids and merged.vocab == whole.vocab
    assert merged.numeric["price"] == pytest.approx(whole.numeric["price"], rel=1e-12)
    assert merge_encoders(summaries[:1]) is summaries[0].encoder  # one shard: as it is


def test_wql_from_summed_parts_is_the_whole_panels():
    rng = np.random.default_rng(2)
    y, q = rng.normal(size=(6, 4)), rng.normal(size=(6, 4, 3))
    levels = (0.1, 0.5, 0.9)
    parts = [metrics.wql_parts(y[:2], q[:2], levels), metrics.wql_parts(y[2:], q[2:], levels)]
    summed = metrics.wql_of(parts[0][0] + parts[1][0], parts[0][1] + parts[1][1])
    assert summed == pytest.approx(metrics.wql(y, q, levels), rel=1e-12)
