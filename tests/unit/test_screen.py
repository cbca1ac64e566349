"""The pandas screen of the validation rules gives GE's verdicts and counts; a forecast's
history is screened and GE runs only when a check fails."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepcast.features.cleaning import prepare
from deepcast.pipelines.validation import gx
from deepcast.pipelines.validation.report import GREAT_EXPECTATIONS, SCREENED
from deepcast.pipelines.validation.rules import IN_TRUE, NOT_NULL, build_suite
from deepcast.pipelines.validation.screen import screen
from tests.unit.test_rules import tiny_cfg, tiny_frame


def _suite():
    cfg = tiny_cfg(static=["store"], past=["price"])
    return build_suite(prepare(tiny_frame()), cfg, {}, 1, cfg.min_length)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_screen_gives_the_ge_suites_verdicts_and_counts(seed):
    """Random failures in every flag column and nulls in every not-null column (and
    nulls in a flag column, which neither counts): the same outcome per rule."""
    suite = _suite()
    rng = np.random.default_rng(seed)
    check = suite.frame.copy()
    n = len(check)
    for rule in suite.rules:
        if rule.expectation == IN_TRUE:
            check[rule.flag] = rng.random(n) > 0.2 * rng.random()
        elif rule.expectation == NOT_NULL:
            check[rule.column] = check[rule.column].astype(object).mask(
                rng.random(n) < 0.1 * rng.random(), None)
    flag = next(r.flag for r in suite.rules if r.expectation == IN_TRUE)
    check[flag] = check[flag].astype(object).mask(rng.random(n) < 0.3, None)
    expected, _ = gx.run_suite(check, suite.rules, "screen")
    assert screen(check, suite.rules) == expected
    assert any(not o.success for o in expected.values())  # the draw has failures


def test_screen_of_an_empty_frame_matches_ge():
    suite = _suite()
    empty = suite.frame.iloc[:0]
    assert screen(empty, suite.rules) == gx.run_suite(empty, suite.rules, "screen")[0]


def test_screened_history_runs_ge_only_when_a_check_fails(tmp_path, monkeypatch):
    from deepcast.pipelines.validate import validate_long_frame

    cfg = tiny_cfg(static=["store"], past=["price"])
    real = gx.run_suite
    calls = []
    monkeypatch.setattr(gx, "run_suite", lambda *a: calls.append(1) or real(*a))
    clean, report = validate_long_frame(prepare(tiny_frame()), cfg, tmp_path / "ok",
                                        min_length=12, screen_first=True)
    assert report.success and report.checked_by == SCREENED and calls == []
    saved = json.loads((tmp_path / "ok" / "validation.json").read_text())
    assert saved["checked_by"] == SCREENED
    # the same frame without screening: GE, with the same checks and counts
    _, by_ge = validate_long_frame(prepare(tiny_frame()), cfg, min_length=12)
    assert by_ge.checked_by == GREAT_EXPECTATIONS and by_ge.results == report.results
    # a failing history: GE runs and its Data Docs are written, as before
    bad = tiny_frame()
    bad.loc[3, "y"] = np.inf
    _, failed = validate_long_frame(prepare(bad), cfg, tmp_path / "bad", min_length=12,
                                    screen_first=True)
    assert not failed.success and failed.checked_by == GREAT_EXPECTATIONS
    assert calls == [1, 1] and failed.docs_path is not None
