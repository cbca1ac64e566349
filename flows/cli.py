"""The ``deepcast`` command line.

Exit codes: 0 ok, 1 run failed, 2 bad command line or config, 3 data failed validation.
``--help`` and argument/config errors stay instant: heavy frameworks (TensorFlow, Prefect,
MLflow, Great Expectations) are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_CONFIG, EXIT_BAD_DATA = 0, 1, 2, 3

QUIET_ENV = {
    # Prefect: no telemetry, no startup race with the analytics service, room for a
    # fresh ephemeral database on 2 cores, no console noise unless asked for.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # TensorFlow / Keras / GE / MLflow: no info banners, no telemetry.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_ENABLE_ONEDNN_OPTS": "0",  # quiet, and bit-reproducible across CPUs
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "DASK_LOGGING__DISTRIBUTED": "warning",  # Dask fan-out: no per-worker start/stop lines
    "KERAS_HOME": os.path.join(os.path.expanduser("~"), ".keras"),
    # Arrow (string ids) on the system allocator: its default pool keeps the pages of freed
    # temporaries, which set the peak of a 10M-row run (3.3x the data against 2.8x)
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}

PREFECT_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.engine", "prefect")

EPILOG = "exit codes: 0 ok, 1 run failed, 2 bad command line or config, 3 data failed validation"


def configure_environment(verbose: bool = False) -> None:
    """Quiet, telemetry-free defaults; the user's own environment always wins."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if "pyarrow" in sys.modules and os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system":
        import pyarrow as pa  # imported already (a library caller): the variable came late

        pa.set_memory_pool(pa.system_memory_pool())
    # TensorFlow's Python logger (retracing notices and the like); stdlib, no TF import
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepcast", description="Forecasting pipelines from one YAML file: "
                     "ingest, validate, train Keras models, track in MLflow, promote, forecast.",
                     epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help: str, description: str, data: bool = True):
        p = sub.add_parser(name, help=help, description=description, epilog=EPILOG)
        p.add_argument("pipeline", help="pipeline YAML file")
        if data:
            p.add_argument("--data", help="data file to use instead of data.path")
            p.add_argument("--report-dir", help="where to write the validation report "
                           "(default: ./mlruns/validation/NAME/TIMESTAMP)")
        _common(p)
        return p

    command("validate", "check a data file against the pipeline's rules",
            "Run the Great Expectations suite on the data; print each failed check with "
            "counts and example rows; write the JSON report and Data Docs HTML.")
    command("train", "validate, train every model, track, promote",
            "Validate the data, train and score every model on the holdout, log all to "
            "MLflow, register the best and promote it to champion if it beats the current "
            "champion on today's holdout.")
    command("backtest", "rolling-origin backtest of every model",
            "Validate the data, then score every model (and seasonal naive) on the same "
            "rolling cut-offs (evaluation.backtest: n_windows, step, refit): MAE, RMSE, MAPE, "
            "sMAPE, MASE, RMSSE per model x cut-off x series and averaged, logged to MLflow.")
    p = command("tune", "hyperparameter search for one model (Optuna)",
                "Search the `tune:` space of the YAML for one model (TPE, random or grid, "
                "with pruning of bad trials by validation loss); each trial is a nested "
                "MLflow run; the best configuration is written as a ready pipeline YAML.")
    p.add_argument("--trials", type=int, help="number of trials (default: tune.trials)")
    p.add_argument("--output", "-o", help="tuned YAML (default: PIPELINE.tuned.yaml beside it)")
    p = command("forecast", "batch forecast with a registered model",
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
                   "series, the forecast table")
    p.add_argument("--series", metavar="ID,ID",
                   help="series to plot in the report (comma-separated ids of the data)")
    p = command("retrain", "the nightly loop: validate, drift check, train, gate, forecast",
                "Validate the newest data, check it for drift against the champion's "
                "reference profile, train every model, promote through the gate, and write "
                "the champion's forecast atomically. A failure leaves the champion and the "
                "last forecast file in place. Prefect artifacts: scores, decision, links.")
    p.add_argument("--output", "-o", required=True,
                   help="forecast file (.csv or .parquet; {date} is replaced by the run's "
                   "date) or sql://TABLE")
    p.add_argument("--as-of", help="use only rows with ds <= AS_OF (a date, or a step for "
                   "integer ds)")
    p = command("deploy", "serve retrain on a cron schedule (needs a Prefect server)",
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
    p = command("promote", "champion history, and rollback to the previous champion",
                "Without options: print the promotion history (who replaced whom, when, "
                "why). With --rollback: give the champion alias back to the version the "
                "current champion replaced (recorded in the history).", data=False)
    p.add_argument("--rollback", action="store_true",
                   help="restore the previous champion")
    p = command("runs", "recent runs of a pipeline and the registry's aliases",
                "A table of recent train runs, their best model and score, the promotion "
                "decision, and the registry's aliases.", data=False)
    p.add_argument("--limit", type=int, default=10, help="how many runs (default 10)")

    p = sub.add_parser("ui", help="open the MLflow UI on the project's store (127.0.0.1)",
                       epilog=EPILOG)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    _common(p)
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("deepcast: %(message)s"))
    log = logging.getLogger("deepcast")
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    for noisy in ("great_expectations", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _HideExpectedFailures(logging.Filter):
    """Hide Prefect's echo of a failure that deepcast reports itself (one clear message)."""

    NAMES = ("ConfigError", "DataError", "ValidationFailed", "RunFailed", "DriftBlocked",
             "MlflowException")

    def filter(self, record: logging.LogRecord) -> bool:
        from deepcast.features.errors import DeepcastError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DeepcastError) or _store_error(exc):
            return False
        message = str(record.msg)
        return not any(f"{name}(" in message or f"{name}:" in message for name in self.NAMES)


def _quiet_prefect(args: argparse.Namespace) -> None:
    if args.debug or args.verbose:
        return
    filt = _HideExpectedFailures()
    for name in PREFECT_LOGGERS:
        logging.getLogger(name).addFilter(filt)


def _print_table(rows: list[dict[str, Any]], out=None) -> None:
    from deepcast.flows.console import print_table

    print_table(rows, out)


def cmd_validate(args: argparse.Namespace) -> int:
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.ingest import ingest
    from deepcast.pipelines.validate import report_dir_for, validate_long_frame

    cfg = load_config(args.pipeline)
    raw = ingest(cfg.data, args.data)
    _, report = validate_long_frame(raw, cfg, report_dir_for(cfg, args.report_dir),
                                    data_docs=True)  # asked for a report: always the HTML
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    elif not args.quiet or not report.success:
        print(report.summary(), file=sys.stdout if report.success else sys.stderr)
    return EXIT_OK if report.success else EXIT_BAD_DATA


def _preflight(args: argparse.Namespace, flow: bool = True):
    """Config and data-file errors in well under a second, before any flow starts; then,
    for a command that runs a flow here, start Prefect's temporary server."""
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.ingest import peek

    cfg = load_config(args.pipeline)
    if args.data or cfg.data.path is not None:
        peek(cfg.data, args.data or cfg.data.path)  # readable, with rows and the columns
    else:
        from deepcast.pipelines.sql import database_url

        database_url(cfg.data.sql.url_env)  # set, or exit 2 naming the variable
    if flow:
        from deepcast.flows.ephemeral import start_if_needed

        start_if_needed()  # Prefect's temporary server starts beside the imports below
    return cfg


def _warm_imports(modules: Sequence[str]) -> None:
    """Import what the flow will need while the Prefect server starts; a module that
    fails to import is left for the flow to report."""
    import importlib

    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


# the heavy modules a flow command loads: Keras (with deepcast's layers), GE, MLflow pyfunc
FLOW_IMPORTS = ("deepcast.forecasting.layers", "great_expectations", "mlflow.pyfunc")


def _run_flow(args: argparse.Namespace, name: str, module: str = "deepcast.flows.flows",
              **params: Any) -> dict[str, Any] | None:
    """Run flow ``name`` of ``module`` on the command's pipeline and data; with --json print
    its summary and return None, else return the summary for the command to print."""
    import importlib

    from deepcast.flows.console import progress_display, wants_progress
    from deepcast.flows.ephemeral import api

    _warm_imports((module, *FLOW_IMPORTS))
    with api(), progress_display(wants_progress(args.quiet, args.json)):
        summary = getattr(importlib.import_module(module), name)(
            pipeline=args.pipeline, data=args.data, report_dir=args.report_dir, **params)
    if args.json:
        print(json.dumps(summary, default=str))
        return None
    return summary


def cmd_train(args: argparse.Namespace) -> int:
    _preflight(args)
    summary = _run_flow(args, "train_pipeline")
    if summary is None:
        return EXIT_OK
    if not args.quiet:
        print(f"\npipeline {summary['pipeline']}: {summary['n_series']} series, "
              f"{summary['n_rows']} rows; holdout metrics (skill vs seasonal naive on "
              f"{summary['metric']}):")
    _print_table(summary["table"])
    d = summary["decision"]
    verdict = "PROMOTED to champion" if d["promoted"] else "champion kept"
    champion = (f"champion v{d['champion_version']} {d['champion_score']:.4f}"
                if d["champion_score"] is not None else
                f"champion v{d['champion_version']} (not re-scored)" if d["champion_version"]
                else "no champion yet")
    print(f"\nbest: {d['candidate']} -> registered as version {d['candidate_version']} "
          f"(challenger)\ngate on {d['gate']} ({d['metric']}): candidate "
          f"{d['candidate_score']:.4f}, seasonal naive {d['seasonal_naive_score']:.4f}, "
          f"{champion} -> {verdict}: {d['reason']}")
    if summary["dropped_series"]:
        print(f"note: {len(summary['dropped_series'])} short series were dropped "
              f"(see {summary['validation_report']})")
    if summary.get("quarantined"):
        print(f"note: {summary['quarantined']} bad row(s) were quarantined to "
              f"{summary['quarantine_path']}")
    if not args.quiet:
        print(f"runs: {summary['tracking_uri']} (parent run {summary['parent_run_id']}); "
              "open them with `deepcast ui`")
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    _preflight(args)
    summary = _run_flow(args, "backtest_pipeline")
    if summary is None:
        return EXIT_OK
    if not args.quiet:
        print(f"\npipeline {summary['pipeline']}: {summary['n_series']} series; backtest of "
              f"{summary['n_windows']} windows, step {summary['step']}, refit "
              f"{summary['refit']} (means over series x cut-offs; skill vs seasonal naive):")
    _print_table(summary["table"])
    if not args.quiet:
        print(f"backtest took {summary['seconds']:.1f} s; runs: {summary['tracking_uri']} "
              f"(parent run {summary['parent_run_id']})")
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    from deepcast.features.errors import ConfigError

    cfg = _preflight(args)
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}", hint="e.g. --trials 20")
    if cfg.tune is None:
        raise ConfigError(f"{args.pipeline} has no `tune:` section",
                          hint="add tune: {model: NAME, space: {option: {int: [lo, hi]}}}; "
                          "see README, Hyperparameter search")
    summary = _run_flow(args, "tune_pipeline", trials=args.trials, output=args.output)
    if summary is None:
        return EXIT_OK
    if not args.quiet:
        print(f"\ntuned {summary['model']} of {summary['pipeline']} with {summary['sampler']} "
              f"({len(summary['trials'])} trials, objective: best validation loss):")
    _print_table([{k: v for k, v in t.items() if k != "run_id"} for t in summary["trials"]])
    print(f"\nbest: {summary['best_params']} (val_loss {summary['best_val_loss']:.5f})")
    print(f"wrote {summary['output']}; train it with `deepcast train {summary['output']}`")
    return EXIT_OK


def cmd_forecast(args: argparse.Namespace) -> int:
    from deepcast.features.errors import ConfigError
    from deepcast.pipelines.forecast import check_output_path
    from deepcast.pipelines.ingest import check_source
    from deepcast.pipelines.report import check_report_path, parse_series

    check_output_path(args.output)
    if args.future:
        check_source(args.future)
    if args.report:
        check_report_path(args.report)
    series = parse_series(args.series)
    if args.series is not None and not args.report:
        raise ConfigError("--series chooses the series plotted in the report",
                          hint="add --report report.html")
    cfg = _preflight(args)
    from deepcast.pipelines.tracking import Tracker

    registry = Tracker(cfg.name).registry
    # an unknown alias or version, or a version that is not deepcast's model: exit 2 at once
    registry.verify(registry.resolve(args.model))
    summary = _run_flow(args, "batch_forecast", output=args.output, model=args.model,
                        future=args.future, report=args.report, series=series or None)
    if summary is not None:
        if not args.quiet:
            _print_table([{"model": summary["model_name"], "version": summary["model_version"],
                           "requested": args.model, "series": summary["series"],
                           "rows": summary["rows"],
                           "dropped series": len(summary["dropped_series"]),
                           "output": summary["output"], "report": summary.get("report", "")}])
        print(f"wrote {summary['rows']} forecasts for {summary['series']} series to "
              f"{summary['output']} with {summary['model_uri']} (version "
              f"{summary['model_version']}, {summary['model_name']}, run {summary['run_id']})")
        if summary.get("report"):
            print(f"wrote the report {summary['report']} (open it in a browser)")
    return EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    from deepcast.pipelines.forecast import check_output_path
    from deepcast.pipelines.ingest import parse_as_of

    cfg = _preflight(args)
    check_output_path(args.output.replace("{date}", "date"))
    parse_as_of(args.as_of, cfg.data)
    summary = _run_flow(args, "retrain", module="deepcast.flows.retrain", output=args.output,
                        as_of=args.as_of)
    if summary is None:
        return EXIT_OK
    print(summary["drift_summary"])
    if not args.quiet:
        _print_table(summary["train"]["table"])
    print(f"{summary['status']}: {summary['message']}")
    if not args.quiet:
        print(f"Prefect artifacts: {', '.join(summary['artifacts'])}")
    return EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    from deepcast.flows.deploy import register, serve_deployment

    _preflight(args, flow=False)
    done, deployment = register(args.pipeline, args.cron, args.timezone, args.output,
                                tuple(args.backfill) if args.backfill else None, args.name,
                                {"data": args.data, "report_dir": args.report_dir})
    if args.json:
        print(json.dumps(done, default=str), flush=True)
    else:
        state = "PAUSED (resume it in the Prefect UI)" if done["paused"] else \
            "active" if done["schedule_active"] else "schedule paused (resume it with " \
            f"`prefect deployment schedule resume {done['deployment']} --all`)"
        print(f"{'updated' if done['existed'] else 'created'} deployment "
              f"{done['deployment']}: cron {done['cron']!r} ({done['timezone']}), {state}; "
              f"forecasts to {done['parameters']['output']}")
        if done["late_runs_skipped"]:
            print(f"cancelled {len(done['late_runs_skipped'])} run(s) late by more than one "
                  "period")
        if done["backfill_runs"]:
            print(f"backfill: {len(done['backfill_runs'])} run(s) queued, one per tick")
        print("serving; Ctrl-C to stop", flush=True)
    serve_deployment(deployment)
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.promote import history, rollback
    from deepcast.pipelines.tracking import Tracker

    cfg = load_config(args.pipeline)
    tracker = Tracker(cfg.name)
    if args.rollback:
        done = rollback(tracker.registry)
        if args.json:
            print(json.dumps(done))
        else:
            print(f"champion of {cfg.name}: v{done['from_version']} -> v{done['to_version']} "
                  f"(rolled back at {done['when']})")
        return EXIT_OK
    events = history(tracker.registry)
    if args.json:
        print(json.dumps({"history": events, "aliases": tracker.registry.aliases()}))
        return EXIT_OK
    if not events:
        print(f"no promotions yet for {cfg.name} in {tracker.uri}")
    _print_table(events)
    print(f"\naliases: {tracker.registry.aliases() or 'none'}")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.tracking import Tracker

    cfg = load_config(args.pipeline)
    tracker = Tracker(cfg.name)
    rows = tracker.history.recent_runs(cfg.evaluation.metric, args.limit)
    aliases = tracker.registry.aliases()
    latest = next((r for r in rows if r["kind"] == "train"), None)
    models = tracker.history.model_runs(latest["run_id"], cfg.evaluation.metric) \
        if latest else []
    if args.json:
        print(json.dumps({"runs": rows, "models": models, "aliases": aliases}, default=str))
        return EXIT_OK
    if not rows:
        print(f"no runs yet for {cfg.name} in {tracker.uri}")
    _print_table(rows)
    if models:
        print(f"\nmodels of the latest train run {latest['run_id']} (holdout metrics):")
        _print_table(models)
    print(f"\naliases: {aliases or 'none'}  (store: {tracker.uri})")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    from deepcast.pipelines.tracking import default_store, tracking_uri

    uri = tracking_uri()
    _, artifacts = default_store()
    # one worker and no job-execution processes: 2 processes instead of ~10 for a local UI
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port), "--workers", "1"]
    if uri.startswith("sqlite:"):
        artifacts.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", artifacts.as_uri()]
    print(f"MLflow UI on http://{args.host}:{args.port} (store {uri}); Ctrl-C to stop",
          file=sys.stderr)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return EXIT_OK


def _store_error(exc: BaseException | None) -> bool:
    """An error of the tracking store's client (MLflow, or its HTTP layer)."""
    module = type(exc).__module__.split(".")[0] if exc is not None else ""
    return module in ("mlflow", "requests", "urllib3")


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM ends a run like Ctrl-C: open MLflow runs are closed (FAILED), temp files
    removed, exit 130."""
    raise KeyboardInterrupt


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate, "train": cmd_train, "backtest": cmd_backtest,
    "forecast": cmd_forecast, "promote": cmd_promote, "tune": cmd_tune,
    "runs": cmd_runs, "ui": cmd_ui, "retrain": cmd_retrain, "deploy": cmd_deploy,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepcast`` console script."""
    args = build_parser().parse_args(argv)
    configure_environment(verbose=args.verbose)
    _setup_logging(args)
    _quiet_prefect(args)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `deepcast ... | head`: the reader stopped reading; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the one place that turns errors into exit codes
        from deepcast.features.errors import DeepcastError

        if args.debug:
            traceback.print_exc()
        if _store_error(exc):
            from deepcast.pipelines.tracking import store_failed, tracking_uri

            exc = store_failed(tracking_uri(), exc)
        if isinstance(exc, DeepcastError):
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        print(f"error: run failed: {type(exc).__name__}: {exc}\n"
              "  fix: rerun with --debug for the full traceback", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
