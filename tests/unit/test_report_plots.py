"""Plots, the HTML report and the CLI's terminal output on tiny synthetic data."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from deepcast.features.errors import ConfigError
from deepcast.flows.console import print_table, progress_display, wants_progress
from deepcast.pipelines import plots, progress
from deepcast.pipelines.forecast import predict_in_shards
from deepcast.pipelines.report import (
    ReportSettings,
    check_report_path,
    check_series,
    parse_series,
    render_report,
    write_report,
)
from deepcast.pipelines.tracking.history import GateRecord, TrainingData, TrainingInfo

PNG = b"\x89PNG\r\n\x1a\n"


def _panel(n_series: int = 4, length: int = 30, horizon: int = 6):
    ds = pd.date_range("2020-01-01", periods=length, freq="MS")
    rows, fc = [], []
    for i in range(n_series):
        y = (i + 1) * 10 + np.sin(np.arange(length))
        rows.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
        f_ds = pd.date_range(ds[-1], periods=horizon + 1, freq="MS")[1:]
        yhat = np.full(horizon, y[-1])
        fc.append(pd.DataFrame({"unique_id": f"s{i}", "ds": f_ds, "yhat": yhat,
                                "yhat_q2.5": yhat - 2, "yhat_q50": yhat, "yhat_q97.5": yhat + 2,
                                "yhat_lo_80": yhat - 1, "yhat_hi_80": yhat + 1}))
    return pd.concat(rows, ignore_index=True), pd.concat(fc, ignore_index=True)


def test_pick_series_puts_chosen_largest_worst_first_and_caps():
    history, _ = _panel(5)
    per_series = pd.DataFrame({"unique_id": ["s0", "s1", "s2", "s3", "s4"],
                               "mase": [0.5, 3.0, 1.0, 0.2, 0.1]})
    picked = plots.pick_series(history, per_series, chosen=["s2"], n=4)
    assert picked[:3] == [("s2", "chosen"), ("s4", "largest"), ("s1", "worst mase")]
    assert len(picked) == 4 and len({u for u, _ in picked}) == 4
    two = plots.pick_series(history, None, n=2, seed=1)
    assert two[0] == ("s4", "largest") and two[1][1] == "sample" and len(two) == 2
    assert plots.pick_series(history, None, n=2, seed=1) == two  # seeded


def test_band_pairs_and_figures_are_pngs():
    history, fc = _panel()
    pairs = plots._band_pairs(list(fc.columns))
    assert [p[:2] for p in pairs] == [("yhat_lo_80", "yhat_hi_80"),
                                      ("yhat_q2.5", "yhat_q97.5")]
    series = plots.pick_series(history)
    holdout = history.groupby("unique_id").tail(6).assign(yhat=lambda d: d["y"] + 1)
    assert plots.series_figure(history, fc, series, holdout, 12, 6).startswith(PNG)
    assert plots.loss_figure({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}).startswith(PNG)
    assert plots.loss_figure({}) is None
    scale = pd.Series(1.0, index=[f"s{i}" for i in range(4)])
    errors = plots.horizon_errors(holdout, scale, 3)
    assert errors["h"].tolist() == [1, 2, 3] and np.allclose(errors["scaled_error"], 1.0)
    table = pd.DataFrame({"model": ["a", "b"], "skill_mase": [0.2, -0.1]})
    assert plots.skill_figure(table, "mase", "a").startswith(PNG)


def _info(n_rows: int) -> TrainingInfo:
    return TrainingInfo(
        registered_model="shop", version="7", model_name="mlp", model_type="mlp",
        run_id="r1", parent_run_id="p1", trained_at="2026-01-02 03:04 UTC",
        registered_at="2026-01-02 03:05 UTC",
        metrics={"holdout_mase": 0.8, "skill_mase": 0.1},
        data=TrainingData(sha256="ab" * 32, source="x.csv", start="2020-01-01 00:00:00",
                          end="2022-06-01 00:00:00", n_series=4, n_rows=n_rows),
        gate=GateRecord.from_tags({"deepcast.decision": "promoted",
                                   "deepcast.reason": "beats champion",
                                   "deepcast.gate_mase": "0.81",
                                   "deepcast.seasonal_naive_score": "0.9",
                                   "deepcast.gate": "holdout"}),
        leaderboard=[{"model": "seasonal_naive", "type": "seasonal_naive", "mase": 0.9,
                      "skill_mase": 0.0, "epochs": 0},
                     {"model": "mlp", "type": "mlp", "mase": 0.8, "skill_mase": 0.1,
                      "epochs": 3}],
        per_series=pd.DataFrame({"unique_id": ["s0", "s1"], "mase": [0.5, 2.0]}),
        tracking_uri="sqlite:///m.db")


def test_gate_record_reads_the_version_tags():
    gate = GateRecord.from_tags({"deepcast.decision": "kept-champion", "deepcast.gate_mase":
                                 "0.8", "deepcast.champion_score": "", "other": "x"})
    assert gate.decision == "kept-champion" and gate.scores == {"mase": "0.8"}
    assert gate.champion_score == "" and gate.reason == "" and GateRecord().scores == {}


def test_report_is_self_contained_and_caps_the_table(tmp_path):
    history, fc = _panel()
    settings = ReportSettings(pipeline="shop", alias="champion", output="f.csv", metric="mase",
                              season_length=12, chosen=("s2",), max_rows=10)
    text = render_report(fc, history, _info(len(history)), settings)
    assert "<script" not in text and not re.search(r"https?://", text)
    assert set(re.findall(r'(?:src|href)="([a-z]+):', text)) == {"data"}
    assert "ab" * 32 in text and "version 7" in text and "2020-01-01 → 2022-06-01" in text
    assert "Showing the first 10 of 24 rows" in text and "14 rows" in text
    # the plotted series come first in a capped table: s2 (chosen) is shown
    assert '<td class="l">s2</td>' in text and '<td class="l">2022-07-01</td>' in text
    assert "<dd>0.8100</dd>" in text and "<dd>0.9000</dd>" in text  # the gate's scores
    path = write_report(tmp_path / "out" / "r.html", text)
    assert path.read_text(encoding="utf-8") == text and not list(path.parent.glob(".r.*"))


def test_report_of_user_text_renders_it_as_text():
    """Series ids with ``$...$`` (mathtext) or markup are plotted and listed as written."""
    history, fc = _panel(2)
    odd = {"s0": "$\\frac{", "s1": "<b>&"}
    history["unique_id"] = history["unique_id"].map(odd)
    fc = fc.assign(unique_id=fc["unique_id"].map(odd), model_name="mlp")
    settings = ReportSettings(pipeline="$x$", chosen=("$\\frac{",), season_length=12)
    text = render_report(fc, history, TrainingInfo(registered_model="shop", version="1"),
                         settings)
    assert '<td class="l">$\\frac{</td>' in text and '<td class="l">&lt;b&gt;&amp;</td>' in text
    assert "<b>&" not in text


def test_report_arguments_fail_fast():
    with pytest.raises(ConfigError, match="unsupported extension '.pdf'"):
        check_report_path("r.pdf")
    assert parse_series(" a, b,,a ") == ["a", "b"] and parse_series(None) == []
    check_series(["s1"], ["s0", "s1"])
    with pytest.raises(ConfigError, match="2 series not in the data: x, y"):
        check_series(["x", "s1", "y"], ["s0", "s1"])


def test_progress_shows_only_on_a_terminal_and_reports_tasks():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_progress(False, False, Tty()) is True
    assert not wants_progress(True, False, Tty()) and not wants_progress(False, True, Tty())
    assert not wants_progress(False, False, io.StringIO())  # CI logs, pipes

    from rich.console import Console

    out = Tty()
    console = Console(file=out, force_terminal=True, width=100)
    calls = []
    history = pd.DataFrame({"id": ["a", "a", "b", "c"], "y": [1.0, 2.0, 3.0, 4.0]})

    def predict(part: pd.DataFrame) -> pd.DataFrame:
        calls.append(sorted(part["id"].unique()))
        return part.groupby("id", as_index=False)["y"].last()

    with progress_display(True, console):
        fc = predict_in_shards(predict, history, "id", shard_series=2)
    assert calls == [["a", "b"], ["c"]] and fc["y"].tolist() == [2.0, 3.0, 4.0]
    assert "forecast series" in out.getvalue() and "3/3" in out.getvalue()
    # without a display (tests, CI, workers) the same code runs silently
    with progress.task("x", 2) as advance:
        advance(1)


def test_summary_table_is_never_wrapped_off_a_terminal():
    out = io.StringIO()
    rows = [{"model": "seasonal_naive", "skill_mase": 0.0, "epochs": 0, "long_" * 30: 1.5}]
    print_table(rows, out)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert "skill_mase" in lines[0] and "seasonal_naive" in lines[-1] and "1.5000" in lines[-1]


def test_a_failed_grid_check_suggests_the_datas_own_freq():
    from deepcast.pipelines.validation.rules import freq_hint as _freq_hint

    ds = pd.date_range("2020-01-04", periods=60, freq="W-SAT").delete([7, 8, 30])  # gaps
    frame = pd.DataFrame({"unique_id": "co2", "ds": ds, "y": 1.0})
    assert _freq_hint(frame, "W") == "; series co2's dates look like `W-SAT` (data.freq: W-SAT)"
    assert _freq_hint(frame, "W-SAT") == ""
    assert _freq_hint(frame.assign(ds=np.arange(57)), 1) == ""  # integer steps: no guess


def test_user_text_in_figures_is_never_parsed_as_math():
    """Series ids and titles are user text: ``$...$`` (even malformed) prints as written."""
    import matplotlib

    history, fc = _panel(2)
    odd = {"s0": "$\\frac{", "s1": "a $x^2$ b $"}
    history["unique_id"] = history["unique_id"].map(odd)
    fc["unique_id"] = fc["unique_id"].map(odd)
    series = [(odd["s0"], "chosen $\\bad"), (odd["s1"], "largest")]
    before = matplotlib.rcParams["text.parse_math"]
    assert plots.series_figure(history, fc, series, None, 12, 6,
                               title="$\\oops{").startswith(PNG)
    assert plots.loss_figure({"loss": [1.0]}, title="$\\x{").startswith(PNG)
    assert matplotlib.rcParams["text.parse_math"] == before  # the caller's settings kept
