"""Which model a train serves: the lowest selection score, or an ensemble tied with it."""

from __future__ import annotations

import pytest

from deepcast.features.errors import RunFailed
from deepcast.pipelines.modelling import ModelResult
from deepcast.pipelines.selection import choose


def _model(name: str, windows: tuple[float, ...], family: str | None = None) -> ModelResult:
    return ModelResult(name, family or name, {"mase": windows[-1]},
                       backtest_scores=windows[:-1], window_scores=windows[-1:])


def test_the_lowest_score_wins_without_an_ensemble():
    a, b = _model("mlp", (1.0, 1.2, 1.1)), _model("nhits", (1.1, 1.3, 1.2))
    choice = choose([b, a], "mase", 1.0)
    assert choice.model is a and choice.note("mase") is None


def test_an_ensemble_within_one_paired_standard_error_is_served_and_said():
    best = _model("mlp", (1.00, 1.40, 1.20))
    # differences 0.05, -0.02, 0.03: mean 0.02, paired SE 0.021 -> a tie
    ens = _model("auto", (1.05, 1.38, 1.23), "ensemble-greedy")
    choice = choose([best, ens], "mase", 1.0)
    assert choice.model is ens and choice.lowest is best
    note = choice.note("mase")
    assert "served auto (ensemble-greedy" in note and "rather than mlp" in note
    assert "evaluation.prefer_ensemble = 1 paired standard errors" in note
    assert "over 3 windows" in note
    # the same gap with no spread is not noise; and 0 turns the preference off
    steady = _model("auto", (1.05, 1.45, 1.25), "ensemble-greedy")
    assert choose([best, steady], "mase", 1.0).model is best
    assert choose([best, ens], "mase", 0.0).model is best


def test_ties_need_two_shared_windows_and_finite_scores():
    one, ens1 = _model("mlp", (1.0,)), _model("auto", (1.01,), "ensemble-mean")
    assert choose([one, ens1], "mase", 5.0).model is one  # one window: no spread
    best = _model("mlp", (1.0, 1.2, 1.1))
    short = _model("auto", (1.21, 1.11), "ensemble-mean")  # other windows: not paired
    assert choose([best, short], "mase", 5.0).model is best
    # the lower of two tied ensembles
    e1 = _model("e1", (1.02, 1.22, 1.13), "ensemble-greedy")
    e2 = _model("e2", (1.01, 1.21, 1.12), "ensemble-mean")
    assert choose([best, e1, e2], "mase", 10.0).model is e2  # both within 10 SE


def test_no_finite_score_fails_the_run():
    with pytest.raises(RunFailed, match="finite holdout mase"):
        choose([_model("mlp", (float("nan"),))], "mase", 1.0)


def test_the_train_serves_the_tied_ensemble_and_its_notes_say_why():
    from deepcast.pipelines.train import TrainOutcome

    best = _model("mlp", (1.00, 1.40, 1.20))
    ens = _model("auto", (1.05, 1.38, 1.23), "ensemble-greedy")
    outcome = TrainOutcome("run", "mase", [best, ens], {"mase": 1.5}, "", 30, 1,
                           holdout_origins=1, holdout_size=6, prefer_ensemble=1.0)
    assert outcome.best is ens
    assert any(n.startswith("served auto (ensemble-greedy") for n in outcome.notes())
    outcome.prefer_ensemble = 0.0
    assert outcome.best is best
    assert not any(n.startswith("served") for n in outcome.notes())
