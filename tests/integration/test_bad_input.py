"""The bad-input catalogue: every malformed file, config or command a user may hand deepcast,
each run through the real CLI in a subprocess with its exact expected outcome.

Every case asserts: the documented exit code; one clear message (what, where, how to fix:
the expected fragments and a ``fix:`` hint); no traceback; a short output (10k bad series
give a summary, not 10k lines); and that nothing was touched: the registry of a trained
pipeline (versions, aliases, runs) and the last forecast file stay as they were. A data
case that reaches validation also leaves its report.

How: every case runs the CLI's ``main(argv)`` in the test process, in the case's folder,
against the session's Prefect test server (the imports are paid once, not 60 times); the
cases in ``IN_A_PROCESS`` -- one per exit code, and those about what only a process shows
(a FIFO, a 17 MiB line, 10k series of output) -- also run as a real ``python -m deepcast``
subprocess, and both runs must agree.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import DATA, mlflow_store
from tests.integration.conftest import subprocess_env

pytestmark = pytest.mark.integration

RETAIL = pd.read_csv(DATA / "aus_retail_small.csv")  # 6 monthly series x 96 points
FIRST = RETAIL["unique_id"].iloc[0]  # A3349335T
NAME, FUTURE_NAME = "bi", "bi-future"
MAX_LINES = 60  # "one clear message": a 10k-series failure is summarised, not listed


def base_config(**over) -> dict:
    """The trained pipeline (cheap baselines), registered as ``bi``."""
    cfg = {"name": NAME,
           "data": {"path": "data.csv", "freq": "MS", "season_length": 12},
           "features": {"lookback": 24, "horizon": 6},
           "models": [{"type": "naive"}, {"type": "seasonal_naive"}],
           "evaluation": {"test_size": 6}}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def future_frame() -> pd.DataFrame:
    """The retail slice with a known-ahead ``promo`` covariate (a future covariate)."""
    ds = pd.to_datetime(RETAIL["ds"])
    return RETAIL.assign(promo=(ds.dt.month % 3 == 0).astype(float))


def future_config(path: str = "data.csv") -> dict:
    return base_config(name=FUTURE_NAME, data={"path": path, "future": ["promo"]},
                       models=[{"type": "linear", "moving_avg": 1}],
                       training={"max_epochs": 1, "batch_size": 64, "jit_compile": False})


# --------------------------------------------------------------------------- builders
# Each builder writes a case's files into its own folder: the pipeline ``p.yaml`` and the
# data it points to.


def pipeline(cfg: dict | None = None, text: str | None = None) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        (d / "p.yaml").write_text(text if text is not None
                                  else yaml.safe_dump(cfg or base_config(), sort_keys=False))
    return build


def data(frame: pd.DataFrame | None = None, text: str | bytes | None = None,
         name: str = "data.csv", **cfg_over) -> Callable[[Path], None]:
    """``p.yaml`` (base config with ``cfg_over``, data.path = ``name``) plus the data."""
    def build(d: Path) -> None:
        over = dict(cfg_over)
        over["data"] = {"path": name, **over.get("data", {})}
        pipeline(base_config(**over))(d)
        target = d / name
        if frame is not None:
            if name.endswith(".parquet"):
                frame.to_parquet(target)
            else:
                frame.to_csv(target, index=False, **({"sep": ";"} if "semi" in name else {}))
        elif isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text or "")
    return build


def edit(**cells) -> pd.DataFrame:
    """The retail slice as text with cells replaced: ``edit(y={2: 'abc'})`` (0-based rows;
    row N of a message is index N-1)."""
    df = RETAIL.astype({"ds": "str", "y": "str"})
    for col, values in cells.items():
        for i, v in values.items():
            df.loc[i, col] = v
    return df


def truncated_parquet(d: Path) -> None:
    data(RETAIL, name="data.parquet")(d)
    raw = (d / "data.parquet").read_bytes()
    (d / "data.parquet").write_bytes(raw[: len(raw) // 2])


def outside_project(d: Path) -> None:
    outside = d.parent / "outside"
    outside.mkdir(exist_ok=True)
    RETAIL.to_csv(outside / "data.csv", index=False)
    pipeline(base_config(data={"path": "../outside/data.csv"}))(d)


def tiny_series(n: int = 10_000) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": np.repeat([f"s{i:05d}" for i in range(n)], 3),
                         "ds": np.tile(["2020-01-01", "2020-02-01", "2020-03-01"], n),
                         "y": 1.0})


def tz_mixed() -> pd.DataFrame:
    df = RETAIL.assign(ds=RETAIL["ds"] + "T00:00:00")
    df.loc[5:10, "ds"] = df.loc[5:10, "ds"] + "+02:00"
    return df


def fifo(d: Path) -> None:
    pipeline(base_config())(d)
    os.mkfifo(d / "data.csv")


def wide_extra(n: int = 10_000) -> pd.DataFrame:
    """The retail slice with ``n`` columns the pipeline does not declare."""
    extra = pd.DataFrame(np.zeros((len(RETAIL), n), dtype=np.int8),
                         columns=[f"x{i}" for i in range(n)])
    return pd.concat([RETAIL, extra], axis=1)


def m3(**cells) -> Callable[[Path], None]:
    df = pd.read_csv(DATA / "m3_monthly_small.csv").astype({"ds": "str"})
    for col, values in cells.items():
        for i, v in values.items():
            df.loc[i, col] = v
    return data(df, data={"freq": 1})


def moved(uid: str, end: str) -> pd.DataFrame:
    """The retail slice with series ``uid`` shifted to end at ``end`` (same monthly grid)."""
    df = RETAIL.copy()
    mask = df["unique_id"] == uid
    df.loc[mask, "ds"] = pd.date_range(end=end, periods=int(mask.sum()),
                                       freq="MS").strftime("%Y-%m-%d")
    return df


def irregular() -> pd.DataFrame:
    """Two series of timestamps at random minutes: no frequency to infer."""
    rng = np.random.default_rng(0)
    steps = [np.sort(rng.choice(100_000, 60, replace=False)) * 37 for _ in range(2)]
    return pd.DataFrame({"unique_id": np.repeat(["a", "b"], 60),
                         "ds": (pd.Timestamp("2024-01-01") + pd.to_timedelta(
                             np.concatenate(steps), unit="min")).strftime("%Y-%m-%d %H:%M"),
                         "y": 1.0})


def future_history(drop_promo: bool = False) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        pipeline(future_config())(d)
        df = future_frame()
        (df.drop(columns="promo") if drop_promo else df).to_csv(d / "data.csv", index=False)
        last = pd.to_datetime(df.groupby("unique_id")["ds"].max())
        rows = [{"unique_id": uid, "ds": t, "promo": 0.0}
                for uid, end in last.items() if uid != FIRST
                for t in pd.date_range(end, periods=7, freq="MS")[1:]]
        pd.DataFrame(rows).to_csv(d / "future.csv", index=False)
    return build


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Case:
    """One bad input: how to build it, the command, the exact expected outcome."""

    id: str
    build: Callable[[Path], None]
    args: tuple[str, ...]  # after `deepcast`; "p.yaml" is the case's pipeline
    code: int
    says: tuple[str, ...]  # fragments the output must contain (what, where, how to fix)
    report: bool = False  # validation ran: its report must exist
    forecast: bool = False  # a forecast case: --output is the last forecast file
    gone: tuple[str, ...] = field(default=())  # files the command must not create


TRAIN = ("train", "p.yaml")
VALIDATE = ("validate", "p.yaml")
FORECAST = ("forecast", "p.yaml", "--output", "last_forecast.csv")

CATALOGUE = [
    # ---- the data file cannot be read: preflight, before any flow, exit 3
    Case("empty-file", data(text=""), TRAIN, 3, ("data.csv: the file is empty",)),
    Case("header-only", data(text="unique_id,ds,y\n"), TRAIN, 3,
         ("data.csv: no data rows (columns: unique_id, ds, y)",)),
    Case("missing-id-column", data(RETAIL.drop(columns="unique_id")), TRAIN, 3,
         ("missing required column(s) ['unique_id']", "the file has: ds, y", "data.id_col")),
    Case("missing-time-column", data(RETAIL.drop(columns="ds")), TRAIN, 3,
         ("missing required column(s) ['ds']", "data.time_col")),
    Case("missing-target-column", data(RETAIL.drop(columns="y")), TRAIN, 3,
         ("missing required column(s) ['y']", "data.target_col")),
    Case("renamed-columns-not-declared",
         data(RETAIL.set_axis(["series", "time", "value"], axis=1)), TRAIN, 3,
         ("missing required column(s) ['unique_id', 'ds', 'y']",
          "the file has: series, time, value", "declare them in the YAML")),
    Case("non-utf8-file", data(text="unique_id,ds,y\nZ\xfcrich,2020-01-01,1\n".encode(
        "latin-1")), TRAIN, 3, ("data.csv: not UTF-8 text (line 2", "b'\\xfc'", "UTF-8")),
    Case("wrong-delimiter", data(RETAIL, name="semi.csv"), TRAIN, 3,
         ("semi.csv: missing required column(s)", "the file has: unique_id;ds;y",
          "';'-separated: save it comma-separated")),
    Case("parquet-that-is-csv", data(text="unique_id,ds,y\na,2020-01-01,1\n",
                                     name="data.parquet"), TRAIN, 3,
         ("data.parquet: cannot be read as Parquet", "magic bytes",
          "really is Parquet and is complete")),
    Case("truncated-parquet", truncated_parquet, TRAIN, 3,
         ("data.parquet: cannot be read as Parquet",)),
    Case("tz-aware-mixed-with-naive", data(tz_mixed()), TRAIN, 3,
         ("column ds mixes timezone-aware timestamps (e.g. row 6: 2011-06-01T00:00:00+02:00)",
          "naive ones (e.g. row 1", "every timestamp with its UTC offset")),
    Case("data-file-missing", data(RETAIL), (*TRAIN, "--data", "missing.csv"), 2,
         ("data file not found: missing.csv", "--data")),
    Case("unsupported-data-type", data(text="x", name="data.xlsx"), TRAIN, 2,
         ("unsupported file type '.xlsx'", "convert the file to CSV or Parquet")),
    # ---- accepted as they are: exit 0
    Case("csv-with-bom", data(text=b"\xef\xbb\xbf" + RETAIL.to_csv(index=False).encode()),
         VALIDATE, 0, ("PASSED - 576 rows, 6 series",), report=True),
    Case("unsorted-rows-are-sorted", data(RETAIL.sample(frac=1.0, random_state=0)),
         VALIDATE, 0, ("PASSED - 576 rows, 6 series",), report=True),
    Case("one-series-only", data(RETAIL[RETAIL["unique_id"] == FIRST]), VALIDATE, 0,
         ("PASSED - 96 rows, 1 series",), report=True),
    # ---- rows that break the rules: validation, exit 3, with rows named and a report
    Case("non-numeric-y", data(edit(y={2: "12,5 kg"})), TRAIN, 3,
         ("y must be a number", f"row 3, series {FIRST}, ds 2011-03-01, y (not a number)",
          "use '.' as decimal separator"), report=True),
    Case("inf-and-minus-inf-y", data(edit(y={3: "inf", 4: "-inf"})), VALIDATE, 3,
         ("y must be finite (not inf or -inf) - 2 row(s)", "row 4", "y inf", "row 5",
          "y -inf", "replace the infinite values"), report=True),
    Case("all-nan-series", data(edit(y={i: "" for i in range(96)})), VALIDATE, 3,
         ("y must not be missing - 96 row(s)", f"series {FIRST}", "missing_y: interpolate"),
         report=True),
    Case("nan-in-keys", data(edit(unique_id={4: ""}, ds={6: ""})), VALIDATE, 3,
         ("unique_id must not be empty - 1 row(s)", "row 5, series (empty)",
          "ds must not be empty - 1 row(s)", "row 7", "fill in"), report=True),
    Case("duplicate-keys", data(pd.concat([RETAIL, RETAIL.iloc[[10]].assign(y=1.0)])),
         VALIDATE, 3, ("each (unique_id, ds) pair must appear only once - 2 row(s)", "row 11",
                    "row 577", "remove or aggregate the duplicate rows"), report=True),
    Case("mixed-datetime-formats", data(edit(ds={3: "01/04/2011"})), VALIDATE, 3,
         ("ds could not be parsed as a timestamp - 1 row(s)", "row 4", "ISO 8601"),
         report=True),
    Case("gapped-timestamps", data(RETAIL.drop(index=[20, 21])), VALIDATE, 3,
         ("ds must be one `MS` step after the previous row of its series", "- 1 row(s)",
          f"row 21, series {FIRST}, ds 2012-11-01, previous ds 2012-08-01",
          "add the missing periods"),
         report=True),
    Case("integer-ds-with-gaps", m3(ds={5: "7"}), VALIDATE, 3,
         ("ds must be one `1` step", "- 1 row(s)", "row 6, series N1402, ds 7"), report=True),
    Case("series-shorter-than-lookback-horizon-test",
         data(RETAIL.groupby("unique_id").head(30), data={"short_series": "error"}),
         VALIDATE, 3, ("every series must have at least 42 rows (features.lookback 24 + "
                       "features.horizon 6 + training.val_size 6 + evaluation.test_size 6)",
                       "length 30", "data.short_series: drop"), report=True),
    Case("10k-tiny-series", data(tiny_series()), TRAIN, 3,
         ("Dropped 10000 series too short", "and 9990 more",
          "no series is left to forecast: all 10000 series have fewer than 19 rows",
          "provide longer series"), report=True),
    # ---- the pipeline YAML is wrong: exit 2, before any data is read
    Case("unknown-model-type", pipeline(base_config(models=[{"type": "prophet"}])), TRAIN, 2,
         ("models.0.type: unknown model type 'prophet'; allowed: arima, cnn, deepar",)),
    Case("negative-horizon", pipeline(base_config(features={"horizon": -6})), TRAIN, 2,
         ("features.horizon: Input should be greater than or equal to 1 (got -6)",)),
    Case("lookback-zero", pipeline(base_config(features={"lookback": 0})), TRAIN, 2,
         ("features.lookback: Input should be greater than or equal to 1 (got 0)",)),
    Case("unknown-yaml-key", pipeline(base_config(features={"lookbak": 24})), TRAIN, 2,
         ("features.lookbak: unknown key; allowed keys here: calendar, embedding_dim",)),
    Case("yaml-not-a-mapping", pipeline(text="- name: bi\n- data: x\n"), TRAIN, 2,
         ("must be a YAML mapping of keys to values, got list", "start the file with `name:`")),
    Case("yaml-python-object-tag", pipeline(
        text="name: !!python/object/apply:os.system ['touch pwned.txt']\n"), TRAIN, 2,
         ("YAML could not be parsed at line 1", "python/object/apply:os.system",
          "tags such as !!python/object are refused"), gone=("pwned.txt",)),
    Case("yaml-syntax-error", pipeline(text="name: bi\ndata: [path: x\n"), TRAIN, 2,
         ("YAML could not be parsed at line 3", "fix the YAML syntax")),
    Case("data-path-outside-project", outside_project, TRAIN, 2,
         ("data.path '../outside/data.csv' resolves to", "outside the pipeline's folder and "
          "the project", "give an absolute data.path")),
    Case("pipeline-names-no-data", pipeline(base_config(data={"path": None})), TRAIN, 2,
         ("the pipeline names no data source (data.path or data.sql)", "set data.path")),
    Case("pipeline-file-missing", pipeline(), ("train", "nope.yaml"), 2,
         ("pipeline file not found: nope.yaml",)),
    Case("bad-freq-alias", pipeline(base_config(data={"freq": "fortnightly"})), VALIDATE, 2,
         ("data.freq: 'fortnightly' is not a pandas offset alias",)),
    Case("unknown-metric", pipeline(base_config(evaluation={"metric": "r2"})), TRAIN, 2,
         ("evaluation.metric: Input should be 'mae', 'rmse', 'smape' or 'mase' (got 'r2')",)),
    # ---- forecast: the last forecast file must survive every one of these
    Case("forecast-unknown-alias", data(RETAIL), (*FORECAST, "--model", "staging"), 2,
         (f"registered model '{NAME}' has no version 'staging'", "aliases now:",
          "'champion'", "pick an existing alias"), forecast=True),
    Case("forecast-unknown-version", data(RETAIL), (*FORECAST, "--model", "99"), 2,
         (f"registered model '{NAME}' has no version '99'",), forecast=True),
    Case("forecast-data-columns-differ", data(RETAIL.rename(columns={"y": "sales"})),
         FORECAST, 3, ("missing required column(s) ['y']", "the file has: unique_id, ds, "
                       "sales"), forecast=True),
    Case("forecast-bad-output-extension", data(RETAIL),
         ("forecast", "p.yaml", "--output", "f.xlsx"), 2,
         ("--output f.xlsx: unsupported extension '.xlsx'", "use a .csv or .parquet"),
         gone=("f.xlsx",)),
    Case("forecast-output-is-a-folder", data(RETAIL),
         ("forecast", "p.yaml", "--output", "mlruns.csv"), 2,
         ("--output mlruns.csv is a folder", "give a file name")),
    Case("forecast-covariate-column-missing", future_history(drop_promo=True),
         (*FORECAST, "--model", "challenger"), 3,
         ("missing covariate column(s) ['promo']", "add the columns to the data"),
         forecast=True),
    # a folder output that cannot be written shard by shard: exit 2 before any flow, and
    # before a retrain trains (it trained every model first, then refused)
    Case("forecast-folder-with-a-report", data(RETAIL),
         ("forecast", "p.yaml", "--output", "fc/", "--report", "r.html"), 2,
         ("--report needs the whole forecast in one process",), gone=("fc", "r.html")),
    Case("retrain-hierarchy-into-a-folder",
         data(RETAIL, hierarchy={"columns": ["a", "b"], "separator": "|"}),
         ("retrain", "p.yaml", "--output", "fc_{date}/"), 2,
         ("a hierarchy is reconciled across all its series at once",), gone=("mlruns",)),
    Case("forecast-future-file-missing", future_history(),
         (*FORECAST, "--model", "challenger", "--future", "nope.csv"), 2,
         ("future covariates file not found: nope.csv", "fix --future"), forecast=True),
    Case("forecast-future-file-is-a-folder",
         lambda d: (future_history()(d), (d / "future").mkdir()),
         (*FORECAST, "--model", "challenger", "--future", "future"), 2,
         ("future covariates file future: no Parquet files", "fix --future"), forecast=True),
    Case("forecast-future-covariates-missing-for-a-series", future_history(),
         (*FORECAST, "--model", "challenger", "--future", "future.csv"), 3,
         ("promo", f"{FIRST}: 2019-01-01, 2019-02-01", "in the --future file"), report=True,
         forecast=True),
    # ---- files that are not what their name says: named before anything is read whole
    Case("data-path-is-a-fifo", fifo, TRAIN, 2,
         ("data.csv is a named pipe (FIFO), not a data file", "fix data.path")),
    Case("gzip-under-a-csv-name", data(text=gzip.compress(RETAIL.to_csv(index=False).encode(),
                                                          mtime=0)), TRAIN, 3,
         ("data.csv: the file is gzip-compressed", "rename it to data.csv.gz")),
    Case("compressed-csv-is-read", data(RETAIL, name="data.csv.gz"), VALIDATE, 0,
         ("PASSED - 576 rows, 6 series",), report=True),
    Case("no-line-breaks", data(text=b"a" * (17 << 20)), TRAIN, 3,
         ("data.csv: no line break in the first 16 MiB",)),
    Case("10k-undeclared-columns", data(wide_extra()), VALIDATE, 0,
         ("PASSED - 576 rows, 6 series",), report=True),
    # ---- values the pipeline cannot compute with: validation, exit 3
    Case("forecast-dates-past-year-9999", data(moved(FIRST, "9999-09-01")), VALIDATE, 3,
         ("the forecast dates of each series (last ds + features.horizon 6 steps of `MS`) "
          "must end by 9999-12-31", f"series {FIRST}, ds 9999-09-01", "placeholder"),
         report=True),
    Case("y-beyond-float32", data(edit(y={4: "1e39"})), VALIDATE, 3,
         ("y must be within +-3.4e+38, the float32 range", "row 5", "rescale the series"),
         report=True),
    Case("lookback-beyond-every-series", data(RETAIL, features={"lookback": 500}), TRAIN, 3,
         ("features.lookback 500 + features.horizon 6 = 506 rows, but the longest series has "
          "96 rows", "lower features.lookback to at most 90"), report=True),
    Case("lookback-absurd", pipeline(base_config(features={"lookback": 10**12})), TRAIN, 2,
         ("features.lookback: Input should be less than or equal to 1000000 "
          "(got 1000000000000)",)),
    # ---- gaps, holes and frequency: filled or inferred where asked, and said
    Case("gaps-filled", data(RETAIL.drop(index=[20, 21]), data={"fill_gaps": "interpolate"}),
         VALIDATE, 0, ("PASSED - 576 rows, 6 series", "Inserted 2 missing step(s)",
                       f"series {FIRST}: 2 point(s), 2.08 % of the series, longest run 2, "
                       "from 2012-09-01 to 2012-10-01"), report=True),
    Case("gap-longer-than-max-gap", data(RETAIL.drop(index=[20, 21, 22]), data={
        "fill_gaps": "interpolate", "max_gap": 2}), VALIDATE, 3,
         ("gaps longer than data.max_gap 2 missing steps are not filled",
          f"series {FIRST}, ds 2012-12-01, previous ds 2012-08-01", "raise data.max_gap"),
         report=True),
    Case("long-hole-interpolated-with-a-warning",
         data(edit(y={i: "" for i in range(30, 61)}), data={"missing_y": "interpolate"}),
         VALIDATE, 0, ("PASSED - 576 rows", "Interpolated 31 missing y value(s)",
                       "warning: 1 series is more than 10 % filled-in values: "
                       f"{FIRST} (32.3 %, 31 points)"), report=True),
    Case("freq-auto-inferred", data(RETAIL, data={"freq": "auto"}), VALIDATE, 0,
         ("PASSED - 576 rows, 6 series", "data.freq: auto -> `MS`"), report=True),
    Case("freq-auto-irregular-dates", data(irregular(), data={"freq": "auto"}), VALIDATE, 3,
         ("data.freq: auto could not infer a frequency from ds", "(irregular)",
          "set data.freq to the step of the data")),
    Case("stale-series", data(RETAIL.drop(index=range(72, 96))), VALIDATE, 0,
         ("PASSED - 552 rows, 6 series", "warning: 1 of 6 series end more than 12 steps",
          f"{FIRST} (last ds 2016-12-01, 24 steps behind)"), report=True),
]


# --------------------------------------------------------------------------- fixtures


def registry_state(uri: str) -> dict:
    """Everything a bad input must not change: per registered model its versions and
    aliases, and the runs of its experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    state = {}
    for name in (NAME, FUTURE_NAME):
        versions = sorted((v.version, v.run_id, v.status)
                          for v in client.search_model_versions(f"name='{name}'"))
        aliases = dict(client.get_registered_model(name).aliases) if versions else {}
        exp = client.get_experiment_by_name(name)
        runs = sorted((r.info.run_id, r.info.status) for r in client.search_runs(
            [exp.experiment_id])) if exp else []
        state[name] = {"versions": versions, "aliases": aliases, "runs": runs}
    return state


@dataclass
class Bench:
    root: Path
    uri: str
    last_forecast: bytes
    before: dict
    results: dict


# one per exit code, and the cases about what a real process shows
IN_A_PROCESS = ("empty-file", "one-series-only", "unknown-yaml-key", "data-path-is-a-fifo",
                "10k-tiny-series")


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def case_folder(case: Case, root: Path, last_forecast: bytes) -> Path:
    """A new folder with the case's files (and the last forecast, for a forecast case)."""
    d = root / case.id
    d.mkdir(parents=True)
    case.build(d)
    (d / "mlruns.csv").mkdir()  # a folder named like a file (output-is-a-folder)
    if case.forecast:
        (d / "last_forecast.csv").write_bytes(last_forecast)
    return d


def run_subprocess(case: Case, root: Path, env: dict[str, str], last_forecast: bytes
                   ) -> Outcome:
    d = case_folder(case, root, last_forecast)
    done = subprocess.run([sys.executable, "-m", "deepcast", *case.args],
                          capture_output=True, text=True, cwd=d, env=env, timeout=300)
    return Outcome(done.returncode, done.stdout, done.stderr)


def run_in_process(case: Case, bench: Bench, capfd, monkeypatch) -> Outcome:
    """``deepcast ARGS`` through the CLI's ``main`` here, in the case's folder."""
    from deepcast.flows.cli import main

    d = case_folder(case, bench.root / "cases", bench.last_forecast)
    monkeypatch.chdir(d)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", bench.uri)
    capfd.readouterr()
    try:
        code = main(list(case.args))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capfd.readouterr()
    return Outcome(code, out, err)


@pytest.fixture(scope="module")
def bench(prefect_harness, tmp_path_factory):
    """One store with a trained champion (``bi``: naive / seasonal naive) and a model with a
    future covariate (``bi-future``), the last forecast file, then the ``IN_A_PROCESS``
    cases submitted to a pool of 2 CLI subprocesses on the session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    from deepcast.flows.flows import batch_forecast, train_pipeline

    root = tmp_path_factory.mktemp("bad_input")
    uri = mlflow_store(root / "mlruns" / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        RETAIL.to_csv(root / "data.csv", index=False)
        (root / "p.yaml").write_text(yaml.safe_dump(base_config()))
        train_pipeline(pipeline=str(root / "p.yaml"), report_dir=str(root / "rep"))
        future_frame().to_csv(root / "future_data.csv", index=False)
        (root / "f.yaml").write_text(yaml.safe_dump(
            future_config("future_data.csv")))
        train_pipeline(pipeline=str(root / "f.yaml"), report_dir=str(root / "rep"))
        batch_forecast(pipeline=str(root / "p.yaml"), output=str(root / "last_forecast.csv"),
                       report_dir=str(root / "rep"))
    last_forecast = (root / "last_forecast.csv").read_bytes()
    env = subprocess_env(MLFLOW_TRACKING_URI=uri, PREFECT_API_URL=PREFECT_API_URL.value(),
                         PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    before = registry_state(uri)
    assert before[NAME]["aliases"].get("champion") == 1
    pool = ThreadPoolExecutor(max_workers=2)
    results = {c.id: pool.submit(run_subprocess, c, root / "processes", env, last_forecast)
               for c in CATALOGUE if c.id in IN_A_PROCESS}
    yield Bench(root, uri, last_forecast, before, results)
    pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the tests


def test_catalogue_is_complete():
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 32
    assert {c.code for c in CATALOGUE} == {0, 2, 3}
    assert set(IN_A_PROCESS) <= set(ids)
    assert {c.code for c in CATALOGUE if c.id in IN_A_PROCESS} == {0, 2, 3}


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: c.id)
def test_bad_input(case: Case, bench: Bench, capfd, monkeypatch):
    done = run_in_process(case, bench, capfd, monkeypatch)
    check_outcome(case, done, bench.root / "cases" / case.id, bench)
    if case.id in bench.results:
        check_outcome(case, bench.results[case.id].result(),
                      bench.root / "processes" / case.id, bench)


def check_outcome(case: Case, done: Outcome, d: Path, bench: Bench) -> None:
    out = done.stdout + done.stderr
    assert done.code == case.code, out[-3000:]
    for fragment in case.says:
        assert fragment in out, f"{fragment!r} not in:\n{out[-3000:]}"
    assert "Traceback" not in out
    assert len(out.splitlines()) <= MAX_LINES, out[:3000]
    if case.code == 2:  # one message: one error line, with the way to fix it
        assert done.stderr.count("error:") == 1 and "fix:" in done.stderr, done.stderr
    elif case.code == 3:
        assert "fix:" in out
    if case.report:
        reports = list((d / "mlruns" / "validation").rglob("validation.json"))
        assert len(reports) == 1, "validation left no report"
    for name in case.gone:
        assert not (d / name).exists()
    # nothing touched: the registry, the last forecast file, no stray temp files
    assert registry_state(bench.uri) == bench.before
    assert (bench.root / "last_forecast.csv").read_bytes() == bench.last_forecast
    if case.forecast:
        assert (d / "last_forecast.csv").read_bytes() == bench.last_forecast
        assert sorted(p.name for p in d.glob(".last_forecast*")) == []


def test_debug_shows_the_traceback(tmp_path):
    """--debug is the one way to see a traceback (for bug reports)."""
    pipeline(base_config(features={"lookback": 0}))(tmp_path)
    done = subprocess.run([sys.executable, "-m", "deepcast", "train", "p.yaml", "--debug"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=subprocess_env(), timeout=120)
    assert done.returncode == 2 and "Traceback" in done.stderr
    assert "features.lookback" in done.stderr


def test_quarantine_moves_bad_rows_aside_and_counts_them(bench: Bench, monkeypatch):
    """data.bad_rows: quarantine: the run goes on without the bad rows; every one is in
    quarantine.csv with its reason, counted in the report, the summary and the MLflow run;
    the default policy (error) refuses the same file."""
    from mlflow import MlflowClient

    from deepcast.features.errors import ValidationFailed
    from deepcast.flows.flows import train_pipeline

    d = bench.root / "quarantine"
    d.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", bench.uri)
    monkeypatch.chdir(d)
    extra = pd.DataFrame({"unique_id": ["", FIRST, FIRST, FIRST],
                          "ds": ["2011-03-01", "", "not a date", "2011-11-01"],
                          "y": ["5", "6", "7", "999"]})
    pd.concat([edit(y={2: "abc", 3: "inf"}), extra]).to_csv(d / "dirty.csv", index=False)
    cfg = base_config(name="bi-quarantine", data={"path": "dirty.csv", "bad_rows": "error"})
    (d / "p.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValidationFailed, match="y must be a number"):
        train_pipeline(pipeline=str(d / "p.yaml"), report_dir=str(d / "refused"))
    assert not (d / "refused" / "quarantine.csv").exists()

    cfg["data"].update(bad_rows="quarantine", missing_y="interpolate")
    (d / "p.yaml").write_text(yaml.safe_dump(cfg))
    summary = train_pipeline(pipeline=str(d / "p.yaml"), report_dir=str(d / "rep"))
    q = pd.read_csv(d / "rep" / "quarantine.csv", keep_default_na=False)
    assert q["row"].tolist() == [3, 4, 577, 578, 579, 580]
    assert q["reason"].tolist() == ["y is not a number", "y is not finite",
                                    "unique_id is empty", "ds is empty", "ds does not parse",
                                    "duplicate (unique_id, ds)"]
    assert q["y"].tolist()[:2] == ["abc", "inf"] and q["ds"].tolist()[4] == "not a date"
    assert q["kept_row"].tolist()[-1] == "11"
    assert summary.quarantined == 6 and summary.n_rows == 576
    report = json.loads((d / "rep" / "validation.json").read_text())
    assert report["quarantined"] == 6 and report["interpolated"] == 2
    client = MlflowClient(bench.uri)
    run = client.get_run(summary.parent_run_id)
    assert run.data.metrics["data_rows_quarantined"] == 6
    assert "validation/quarantine.csv" in [
        a.path for a in client.list_artifacts(summary.parent_run_id, "validation")]
