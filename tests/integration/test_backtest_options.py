"""``deepcast backtest --n-windows/--step/--refit`` and the same keywords of
``deepcast.backtest``: they replace ``evaluation.backtest`` for this run, the ensembles get
rows, and a one-window backtest says that its scores rest on one window."""

from __future__ import annotations

import argparse
import json

import pytest

import deepcast
from deepcast.flows import commands
from tests.conftest import pipeline_dict

pytestmark = pytest.mark.integration


def _cfg(retail_csv):
    cfg = pipeline_dict(retail_csv, name="it-bt-options",
                        models=[{"type": "naive"}, {"type": "mean"}],
                        ensemble=[{"name": "avg", "method": "mean",
                                   "members": ["naive", "mean"]}])
    cfg["evaluation"] = {"test_size": 6, "backtest": {"n_windows": 3, "refit": False}}
    return cfg


def test_api_keywords_replace_the_yaml_backtest(store, retail_csv):
    result = deepcast.backtest(_cfg(retail_csv), n_windows=1, step=3, refit=True)
    assert (result.n_windows, result.step, result.refit) == (1, 3, True)
    assert [r["model"] for r in result.table] == ["seasonal_naive", "naive", "mean", "avg"]
    assert any("rest on one window" in n and "n_windows= in Python" in n for n in result.notes)
    as_json = json.loads(json.dumps(result.to_dict(), default=str))
    assert as_json["notes"] == result.notes and as_json["skipped"] == {}

    plain = deepcast.backtest(_cfg(retail_csv))  # the YAML's settings
    assert (plain.n_windows, plain.step, plain.refit, plain.notes) == (3, 6, False, [])
    with pytest.raises(deepcast.ConfigError, match="evaluation.backtest.n_windows"):
        deepcast.backtest(_cfg(retail_csv), n_windows=0)


def test_command_passes_the_options_and_prints_the_notes(monkeypatch, capsys, retail_csv):
    seen = {}

    def launch(args, job, *params, **options):
        from deepcast.pipelines.results import BacktestResult

        seen.update(options)
        return BacktestResult("p", "run", "mase", 1, 6, True, [{"model": "naive"}], 1.0,
                              6, {}, "sqlite://", {"wtd": "why"},
                              ["the scores rest on one window", "ensemble wtd skipped: why"])

    monkeypatch.setattr(commands, "_preflight", lambda args: deepcast.load_config(
        _cfg(retail_csv)))
    monkeypatch.setattr(commands, "_launch", launch)
    args = argparse.Namespace(pipeline="p.yaml", data=None, report_dir=None, quiet=False,
                              json=False, n_windows=1, step=None, refit=True)
    assert commands.cmd_backtest(args) == 0
    assert seen == {"report_dir": None, "n_windows": 1, "step": None, "refit": True}
    out = capsys.readouterr().out
    assert "note: the scores rest on one window" in out
    assert "note: ensemble wtd skipped: why" in out
