"""The Python API's errors name its keyword arguments where the CLI's name flags."""

from __future__ import annotations

import pytest

import deepcast
from deepcast.flows.api_terms import in_python_terms, speaks_python


@pytest.mark.parametrize(("cli", "output", "python"), [
    ("--output forecasts/x is a file, not a folder", "forecasts/x",
     "output='forecasts/x' is a file, not a folder"),
    ("--output sql://FC: 'a b' is not a plain table name", "sql://FC",
     "output='sql://FC': 'a b' is not a plain table name"),
    ("--output results is a folder that deepcast did not write", "results",
     "output='results' is a folder that deepcast did not write"),
    ("--output /tmp/my out/x.csv: the folder is not writable", "/tmp/my out/x.csv",
     "output='/tmp/my out/x.csv': the folder is not writable"),
])
def test_the_calls_own_values_are_quoted(cli, output, python):
    assert in_python_terms(cli, "df", {"--output": output}) == python


@pytest.mark.parametrize(("cli", "python"), [
    ("drop --report, or give --output a .csv/.parquet file name",
     "drop report=, or give output= a .csv/.parquet file name"),
    ("pass them with --future PATH (unique_id, ds", "pass them with future=PATH (unique_id, ds"),
    ("fix --future: the file", "fix future=: the file"),
    ("pass a step number, e.g. --as-of 120", "pass a step number, e.g. as_of=120"),
    ("e.g. --as-of 2014-06-30", "e.g. as_of='2014-06-30'"),
    ("--n-windows and --step take integers >= 1, --refit true",
     "n_windows= and step= take integers >= 1, refit= true"),
    ("--series: S9: too short", "ForecastReport(series=...): S9: too short"),
    ("or pass the data (--data, or the Python API's frame)", "or pass the data (history=)"),
    ("fix data.path in the YAML or --data", "fix data.path in the YAML or history="),
    ("roll back with `deepcast promote --rollback`",
     "roll back with `deepcast promote --rollback`"),
    ("a value--like this, and --json", "a value--like this, and --json"),
])
def test_flags_become_keyword_arguments(cli, python):
    assert in_python_terms(cli, "history") == python


def test_the_same_error_comes_back_reworded():
    @speaks_python(data="df")
    def job(output=None):
        raise deepcast.ConfigError("--output x.txt: unsupported extension '.txt'",
                                   hint="use a .csv file name, or drop --output")

    with pytest.raises(deepcast.ConfigError) as info:
        job(output="x.txt")
    exc = info.value
    assert exc.message == "output='x.txt': unsupported extension '.txt'"
    assert exc.hint == "use a .csv file name, or drop output="
    assert str(exc) == f"{exc.message}\n  fix: {exc.hint}"
    assert exc.exit_code == deepcast.ConfigError.exit_code
    assert job.__wrapped__ is not job  # the CLI calls the unwrapped function: its flags


def test_an_api_call_names_its_arguments(tmp_path):
    cfg = {"name": "terms", "data": {"freq": "MS", "season_length": 12},
           "features": {"lookback": 24, "horizon": 6}, "models": [{"type": "naive"}],
           "evaluation": {"test_size": 6}}
    out = tmp_path / "f.xlsx"
    with pytest.raises(deepcast.ConfigError, match=rf"output='{out}': unsupported"):
        deepcast.forecast(cfg, output=str(out))
