"""``models: auto``: the expansion a user did not write (models, lookback, the greedy
ensemble), its errors, and the time limit's rules."""

import pytest

from deepcast.features.errors import ConfigError
from deepcast.pipelines.budget import Budget
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.config.auto import AUTO_ENSEMBLE, PRESETS
from tests.conftest import pipeline_dict


def _auto(retail_csv, **over):
    raw = pipeline_dict(retail_csv, models="auto", features={"horizon": 6}, **over)
    return parse_config(raw)


def test_auto_writes_out_models_lookback_and_greedy_ensemble(retail_csv):
    cfg = _auto(retail_csv)
    labels = [m.label for m in cfg.models]
    assert labels == [m.get("name") or m["type"] for m in PRESETS["fast"]]
    assert cfg.features.lookback == 24  # two seasons (12) beat two horizons (6)
    (ens,) = cfg.ensemble
    assert (ens.name, ens.method, ens.members) == (AUTO_ENSEMBLE, "greedy", labels)
    assert cfg.auto.preset == "fast" and cfg.auto.time_limit is None
    best = _auto(retail_csv, auto={"preset": "best", "time_limit": 30})
    assert set(labels) < {m.label for m in best.models} and best.auto.time_limit == 30
    # what the user wrote stays: their lookback, and their ensembles after `auto`
    mine = {"name": "avg", "method": "mean", "members": ["naive", "linear"]}
    cfg = parse_config(pipeline_dict(retail_csv, models="auto", ensemble=[mine],
                                     features={"horizon": 6, "lookback": 30}))
    assert cfg.features.lookback == 30
    assert [e.name for e in cfg.ensemble] == [AUTO_ENSEMBLE, "avg"]


def test_auto_errors_name_the_key(retail_csv):
    with pytest.raises(ConfigError, match="auto.preset") as err:
        _auto(retail_csv, auto={"preset": "slow"})
    assert "lookback" not in str(err.value)  # one message: the bad key only
    with pytest.raises(ConfigError, match="neither a list of model entries nor 'auto'"):
        parse_config(pipeline_dict(retail_csv, models="automatic"))
    with pytest.raises(ConfigError, match="time_limit"):
        _auto(retail_csv, auto={"time_limit": 0})


def test_time_budget_skips_trainable_models_and_thins_ensembles(retail_csv):
    cfg = _auto(retail_csv)
    assert Budget(None).allows("mlp") and Budget(3600).allows("mlp")
    spent = Budget(0.0)
    assert spent.allows("naive", costly=False)  # baselines always run
    assert not spent.allows("linear") and not spent.allows("mlp")
    thin = spent.ensemble(cfg.ensemble[0], {"naive", "seasonal_naive", "drift"})
    assert thin.members == ["naive", "seasonal_naive", "drift"]
    assert spent.ensemble(cfg.ensemble[0], {"naive"}) is None
    assert spent.skipped == ["linear", "mlp", AUTO_ENSEMBLE]
