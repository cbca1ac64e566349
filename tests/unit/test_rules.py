"""The validation check catalogue is a table: a new check is one entry in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepcast.features.cleaning import prepare
from deepcast.pipelines.config import PipelineConfig, parse_config
from deepcast.pipelines.validation import rules
from deepcast.pipelines.validation.rules import COVARIATE_RULES, IN_TRUE, RULES, Rule, build_suite

M3 = Path(__file__).resolve().parents[1] / "data" / "m3_monthly_small.csv"


def tiny_cfg(**data: object) -> PipelineConfig:
    return parse_config({
        "name": "rules",
        "data": {"path": str(M3), "freq": 1, "season_length": 12, **data},
        "features": {"lookback": 12, "horizon": 6},
        "models": [{"type": "naive"}],
        "evaluation": {"test_size": 6},
    })


def tiny_frame(n: int = 40) -> pd.DataFrame:
    """One integer-step series of ``n`` rows with a static and a past covariate."""
    return pd.DataFrame({
        "unique_id": ["a"] * n, "ds": pd.array(np.arange(1, n + 1), dtype="Int64"),
        "y": np.linspace(-2.0, 5.0, n), "store": 1.0, "price": np.arange(n, dtype=float),
    })


def test_rule_names_and_flags_are_unique_once_bound() -> None:
    cfg = tiny_cfg(static=["store"], past=["price"])
    suite = build_suite(prepare(tiny_frame()), cfg, {}, 1, cfg.min_length)
    names = [r.name for r in suite.rules]
    assert len(names) == len(set(names)) == len(RULES) + 2 + 2  # store: 2 rules, price: 2
    flags = [r.flag for r in suite.rules if r.flag]
    assert len(flags) == len(set(flags))
    assert all(r.flag for r in suite.rules if r.expectation == IN_TRUE)
    assert all("{" not in r.message + r.hint + r.gx_text for r in suite.rules)
    assert list(suite.frame.columns[:2]) == ["unique_id", "ds"]
    assert set(flags) <= set(suite.frame.columns)


def test_covariate_rules_cover_each_declared_column() -> None:
    cfg = tiny_cfg(static=["store"], past=["price"])
    suite = build_suite(prepare(tiny_frame()), cfg, {}, 1, cfg.min_length)
    names = [r.name for r in suite.rules[len(RULES):]]
    assert names == ["store_not_null", "store_constant", "price_not_null", "price_numeric"]
    assert {r.name.replace("{col}", "") for r in COVARIATE_RULES} == {
        "_not_null", "_numeric", "_constant"}


def test_a_new_rule_is_one_table_entry(monkeypatch) -> None:
    """Appending one Rule adds a GE expectation, a report entry and its example rows."""
    from deepcast.pipelines.validate import validate_long_frame

    positive = Rule(
        "y_positive", "y", IN_TRUE, lambda f, _: ~(f.y <= 0), flag="y_positive",
        gx_text="y must be positive", message="y must be positive (demand is never negative)",
        hint="check the sign of the exported values")
    monkeypatch.setattr(rules, "RULES", (*RULES, positive))
    cfg = tiny_cfg()
    _, report = validate_long_frame(tiny_frame(), cfg)
    assert not report.success
    (failed,) = report.failures()
    assert failed.description == "y must be positive (demand is never negative)"
    assert failed.expectation == "expect_column_values_to_be_in_set"
    assert failed.unexpected_count == int((tiny_frame()["y"] <= 0).sum())
    assert [ex["row"] for ex in failed.examples] == [1, 2, 3, 4, 5]
    assert "FAILED: y must be positive" in report.summary()
