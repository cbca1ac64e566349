"""The ``deepcast`` command line's arguments (argparse): ten commands, their options and
help. A bad command line exits 2 with one clear line and a hint."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deepcast.features.errors import EXIT_BAD_CONFIG

EPILOG = "exit codes: 0 ok, 1 run failed, 2 bad command line or config, 3 data failed validation"


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one clear line (its default), plus a hint."""

    def error(self, message: str) -> None:  # noqa: D401
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_CONFIG, f"error: {message}\n  fix: see `{self.prog} --help`\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and results")
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's run logs too")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def _command(sub: Any, name: str, help: str, description: str,
             data: bool = True) -> argparse.ArgumentParser:
    """A command taking the pipeline YAML (and, with ``data``, --data and --report-dir)."""
    p = sub.add_parser(name, help=help, description=description, epilog=EPILOG)
    p.add_argument("pipeline", help="pipeline YAML file")
    if data:
        p.add_argument("--data", help="data file to use instead of data.path")
        p.add_argument("--report-dir", help="where to write the validation report "
                       "(default: ./mlruns/validation/NAME/TIMESTAMP)")
    _common(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, in the order ``deepcast --help`` lists them."""
    parser = _Parser(prog="deepcast", description="Forecasting pipelines from one YAML file: "
                     "ingest, validate, train Keras models, track in MLflow, promote, forecast.",
                     epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_run_commands(sub)
    _add_forecast(sub)
    _add_schedule_commands(sub)
    _add_store_commands(sub)
    return parser


def _add_run_commands(sub: Any) -> None:
    """validate, train, backtest, tune."""
    _command(sub, "validate", "check a data file against the pipeline's rules",
             "Run the Great Expectations suite on the data; print each failed check with "
             "counts and example rows; write the JSON report and Data Docs HTML.")
    _command(sub, "train", "validate, train every model, track, promote",
             "Validate the data, train and score every model on the holdout, log all to "
             "MLflow, register the best and promote it to champion if it beats the current "
             "champion on today's holdout.")
    _add_backtest(sub)
    p = _command(sub, "tune", "hyperparameter search for one model (Optuna)",
                 "Search the `tune:` space of the YAML for one model (TPE, random or grid, "
                 "with pruning of bad trials by validation loss); each trial is a nested "
                 "MLflow run; the best configuration is written as a ready pipeline YAML.")
    p.add_argument("--trials", type=int, help="number of trials (default: tune.trials)")
    p.add_argument("--output", "-o", help="tuned YAML (default: PIPELINE.tuned.yaml beside it)")


def _refit_arg(value: str) -> bool | int:
    """``--refit``: true, false or a positive integer k (refit every k windows)."""
    text = value.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected true, false or an integer k >= 1, got {value!r}")


def _positive(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return int(value)


def _add_backtest(sub: Any) -> None:
    """backtest."""
    p = _command(sub, "backtest", "rolling-origin backtest of every model and ensemble",
                 "Validate the data, then score every model, every ensemble and seasonal "
                 "naive on the same rolling cut-offs (evaluation.backtest: n_windows, step, "
                 "refit; the options below replace them): MAE, RMSE, MAPE, sMAPE, MASE, RMSSE "
                 "per model x cut-off x series and averaged, logged to MLflow.")
    p.add_argument("--n-windows", type=_positive, metavar="N",
                   help="cut-offs (default: evaluation.backtest.n_windows)")
    p.add_argument("--step", type=_positive, metavar="S",
                   help="steps between cut-offs (default: evaluation.backtest.step, else "
                   "the horizon)")
    p.add_argument("--refit", type=_refit_arg, metavar="true|false|K",
                   help="refit at every cut-off (true), once (false) or every K windows "
                   "(default: evaluation.backtest.refit)")


def _add_forecast(sub: Any) -> None:
    """forecast."""
    p = _command(sub, "forecast", "batch forecast with a registered model",
                 "Load models:/NAME@ALIAS (or a version), forecast the horizon after the end "
                 "of each series in the data, and write unique_id, ds, yhat, model_name, "
                 "model_version, run_id atomically.")
    p.add_argument("--output", "-o", required=True,
                   help="forecast file (.csv or .parquet), or sql://TABLE to replace a "
                   "table's rows (database URL from data.sql.url_env / DEEPCAST_DB_URL)")
    p.add_argument("--model", default="champion",
                   help="alias (champion, challenger) or version number (default: champion)")
    p.add_argument("--future", help="future covariates for the forecast dates (unique_id, ds "
                   "and the data.future columns, CSV or Parquet); default: rows after each "
                   "series' last target value in the data")
    p.add_argument("--report", metavar="REPORT.html",
                   help="also write a self-contained HTML report: model, version, training "
                   "data, scores vs seasonal naive, plots of the largest / worst / chosen "
                   "series, the forecast table; written together with --output (both "
                   "change, or neither does)")
    p.add_argument("--series", metavar="ID,ID",
                   help="series to plot in the report (comma-separated ids of the data)")
    p.add_argument("--no-formula-guard", dest="formula_guard", action="store_false",
                   help="write CSV text cells as they are; by default a cell starting with "
                   "= + - @ tab or CR gets a leading ' so a spreadsheet never runs it as a "
                   "formula")


def _add_schedule_commands(sub: Any) -> None:
    """retrain, deploy."""
    p = _command(sub, "retrain", "the nightly loop: validate, drift check, train, gate, forecast",
                 "Validate the newest data, check it for drift against the champion's "
                 "reference profile, train every model, promote through the gate, and write "
                 "the champion's forecast atomically. A failure leaves the registry's aliases "
                 "and the last forecast file as they were. Prefect artifacts: scores, "
                 "decision, links.")
    p.add_argument("--output", "-o", required=True,
                   help="forecast file (.csv or .parquet; {date} is replaced by the run's "
                   "date) or sql://TABLE")
    p.add_argument("--as-of", help="use only rows with ds <= AS_OF (a date, or a step for "
                   "integer ds)")
    p = _command(sub, "deploy", "serve retrain on a cron schedule (needs a Prefect server)",
                 "Create or update the Prefect deployment retrain/NAME with a cron schedule "
                 "and serve it here until Ctrl-C (runs one at a time). A paused deployment or "
                 "schedule stays paused on redeploy; runs late by more than one period are "
                 "cancelled. Needs PREFECT_API_URL pointing at `prefect server start`.")
    p.add_argument("--cron", required=True, help='cron schedule, e.g. "0 2 * * *"')
    p.add_argument("--timezone", help="IANA timezone of the schedule (default UTC), e.g. "
                   "Europe/Berlin")
    p.add_argument("--output", "-o", help="forecast file of each run ({date} is replaced by "
                   "the run's date; default forecasts/NAME_{date}.csv)")
    p.add_argument("--backfill", nargs=2, metavar=("START", "END"),
                   help="also run retrain once per cron tick from START to END (dates), "
                   "each with the data up to its tick")
    p.add_argument("--name", help="deployment name (default: the pipeline's name)")


def _add_store_commands(sub: Any) -> None:
    """promote, runs, ui."""
    p = _command(sub, "promote", "champion history, and rollback to the previous champion",
                 "Without options: print the promotion history (who replaced whom, when, "
                 "why). With --rollback: give the champion alias back to the version the "
                 "current champion replaced (recorded in the history).", data=False)
    p.add_argument("--rollback", action="store_true",
                   help="restore the previous champion")
    p = _command(sub, "runs", "recent runs of a pipeline and the registry's aliases",
                 "A table of recent train runs, their best model and score, the promotion "
                 "decision, and the registry's aliases.", data=False)
    p.add_argument("--limit", type=int, default=10, help="how many runs (default 10)")

    p = sub.add_parser("ui", help="open the MLflow UI on the project's store (127.0.0.1)",
                       epilog=EPILOG)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    _common(p)
