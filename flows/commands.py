"""The ``deepcast`` commands, one function each: check the arguments in well under a second,
run the Python API (through the Prefect flows, as ``orchestrator="prefect"``) or read the
tracking store, and print the result (``--json``: its ``to_dict``).

Heavy frameworks (TensorFlow, Prefect, MLflow, Great Expectations) are imported only by
the commands that need them, inside the functions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from deepcast.features.errors import EXIT_BAD_DATA, EXIT_OK, ConfigError


def _print_table(rows: list[dict[str, Any]]) -> None:
    from deepcast.flows.console import print_table

    print_table(rows)


def _print_scores(result: Any) -> None:
    """A train or backtest table, then what its reader should know about it."""
    _print_table(result.table)
    for note in result.notes:
        print(f"note: {note}")


def _print_json(result: Any) -> None:
    print(_dumps(result.to_dict()))


def _dumps(obj: Any) -> str:
    """Strict JSON (RFC 8259): NaN and infinities, which json.dumps writes as bare NaN /
    Infinity that strict parsers reject, become null; other objects their str()."""
    def clean(x: Any) -> Any:
        if type(x).__module__ == "numpy" and hasattr(x, "item"):  # numpy scalars
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(obj), default=str, allow_nan=False)


def _preflight(args: argparse.Namespace, flow: bool = True):
    """Config and data-file errors in well under a second, before any flow starts; then,
    for a command that runs a flow here, start Prefect's temporary server."""
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.ingest import peek

    cfg = load_config(args.pipeline)
    if args.data or cfg.data.path is not None:
        peek(cfg.data, args.data or cfg.data.path)  # readable, with rows and the columns
    elif cfg.data.sql is None:
        cfg.data.require_source()  # neither in the YAML nor --data: exit 2, named
    else:
        from deepcast.pipelines.sql import database_url

        database_url(cfg.data.sql.url_env)  # set, or exit 2 naming the variable
    if flow:
        _start_server()
    return cfg


def _start_server() -> None:
    """Prefect's temporary server (unless PREFECT_API_URL is set), starting beside the
    imports that follow."""
    from deepcast.flows.ephemeral import start_if_needed

    start_if_needed()


def _warm_up(validation: bool) -> None:
    """Import what a flow command needs (Prefect and the flows; Keras, MLflow, and GE
    unless the command screens its data first) while the temporary server starts; a
    module that fails to import is left for the run to report."""
    from deepcast.pipelines.runs import preload

    with contextlib.suppress(Exception):
        from deepcast.flows import flows, retrain  # noqa: F401
    preload(validation)


def _in_flows(args: argparse.Namespace, job: Callable[..., Any], *params: Any,
              **options: Any) -> Any:
    """Run an API ``job`` through the Prefect flows on the command's server (progress bars
    on a terminal); its result."""
    from deepcast.flows import api as jobs
    from deepcast.flows.console import progress_display, wants_progress
    from deepcast.flows.ephemeral import api

    _warm_up(validation=job is not jobs.forecast)  # a forecast screens its history first
    with api(), progress_display(wants_progress(args.quiet, args.json)):
        return _flags(job)(*params, orchestrator="prefect", **options)


def _flags(job: Callable[..., Any]) -> Callable[..., Any]:
    """An API function as the CLI calls it: its errors name the command's flags, not
    the Python keyword arguments (:mod:`deepcast.flows.api_terms`)."""
    return getattr(job, "__wrapped__", job)


def _launch(args: argparse.Namespace, job: Callable[..., Any], *params: Any,
            **options: Any) -> Any:
    """:func:`_in_flows`; with --json print its result and return None, else return it."""
    result = _in_flows(args, job, *params, **options)
    if args.json:
        _print_json(result)
        return None
    return result


def cmd_validate(args: argparse.Namespace) -> int:
    from deepcast.flows import api
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.runs.base import RunInputs
    from deepcast.pipelines.runs.validate_shards import sharded

    if sharded(load_config(args.pipeline), RunInputs(data=args.data)):  # on Dask workers
        _preflight(args)
        result = _in_flows(args, api.validate, args.pipeline, args.data,
                           report_dir=args.report_dir)
    else:
        result = _flags(api.validate)(args.pipeline, args.data, report_dir=args.report_dir)
    if args.json:
        _print_json(result)
    elif not args.quiet or not result.success:
        print(result.summary(), file=sys.stdout if result.success else sys.stderr)
    return EXIT_OK if result.success else EXIT_BAD_DATA


def cmd_train(args: argparse.Namespace) -> int:
    from deepcast.flows import api

    _preflight(args)
    result = _launch(args, api.train, args.pipeline, args.data, report_dir=args.report_dir)
    if result is None:
        return EXIT_OK
    if not args.quiet:
        print(f"\npipeline {result.pipeline}: {result.n_series} series, "
              f"{result.n_rows} rows; holdout metrics (skill vs seasonal naive on "
              f"{result.metric}):")
    _print_scores(result)
    d = result.decision
    verdict = "PROMOTED to champion" if d.promoted else "champion kept"
    champion = (f"champion v{d.champion_version} {d.champion_score:.4f}"
                if d.champion_score is not None else
                f"champion v{d.champion_version} (not re-scored)" if d.champion_version
                else "no champion yet")
    print(f"\nbest: {d.candidate} -> registered as version {d.candidate_version} "
          f"(challenger)\ngate on {d.gate} ({d.metric}): candidate "
          f"{d.candidate_score:.4f}, seasonal naive {d.seasonal_naive_score:.4f}, "
          f"{champion} -> {verdict}: {d.reason}")
    if d.by_level:
        from deepcast.flows.console import print_table

        print_table([{"level": f"{lv} *" if lv == d.level else lv, **row}
                     for lv, row in d.by_level.items()],
                    title=f"gate {d.metric} per level (* decides: promotion.level)")
    if result.dropped_series:
        print(f"note: {len(result.dropped_series)} short series were dropped "
              f"(see {result.validation_report})")
    if result.quarantined:
        print(f"note: {result.quarantined} bad row(s) were quarantined to "
              f"{result.quarantine_path}")
    if not args.quiet:
        print(f"runs: {result.tracking_uri} (parent run {result.parent_run_id}); "
              "open them with `deepcast ui`")
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    from deepcast.flows import api
    from deepcast.pipelines.config import override_backtest

    windows = {"n_windows": args.n_windows, "step": args.step, "refit": args.refit}
    override_backtest(_preflight(args), **windows)  # bad values: exit 2 before any flow
    result = _launch(args, api.backtest, args.pipeline, args.data, report_dir=args.report_dir,
                     **windows)
    if result is None:
        return EXIT_OK
    if not args.quiet:
        print(f"\npipeline {result.pipeline}: {result.n_series} series; backtest of "
              f"{result.n_windows} windows, step {result.step}, refit "
              f"{result.refit} (means over series x cut-offs; skill vs seasonal naive):")
    _print_scores(result)
    if not args.quiet:
        print(f"backtest took {result.seconds:.1f} s; runs: {result.tracking_uri} "
              f"(parent run {result.parent_run_id})")
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    from deepcast.flows import api

    cfg = _preflight(args)
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}", hint="e.g. --trials 20")
    if cfg.tune is None:
        raise ConfigError(f"{args.pipeline} has no `tune:` section",
                          hint="add tune: {model: NAME, space: {option: {int: [lo, hi]}}}; "
                          "see README, Hyperparameter search")
    result = _launch(args, api.tune, args.pipeline, args.data, args.trials,
                     output=args.output, report_dir=args.report_dir)
    if result is None:
        return EXIT_OK
    if not args.quiet:
        print(f"\ntuned {result.model} of {result.pipeline} with {result.sampler} "
              f"({len(result.trials)} trials, objective: best validation loss):")
    _print_table([{k: v for k, v in t.items() if k != "run_id"} for t in result.trials])
    print(f"\nbest: {result.best_params} (val_loss {result.best_val_loss:.5f})")
    print(f"wrote {result.output}; train it with `deepcast train {result.output}`")
    return EXIT_OK


def cmd_forecast(args: argparse.Namespace) -> int:
    from deepcast.flows import api
    from deepcast.pipelines.forecast import check_output_path
    from deepcast.pipelines.forecast_folder import is_folder_output
    from deepcast.pipelines.ingest import FUTURE_SOURCE, check_source
    from deepcast.pipelines.report import check_report_path, parse_series
    from deepcast.pipelines.runs.forecast_shards import check_folder_output
    from deepcast.pipelines.runs.store import resolve_model

    check_output_path(args.output)
    if args.future:
        check_source(args.future, *FUTURE_SOURCE)
    if args.report:
        check_report_path(args.report)
    series = parse_series(args.series)
    if args.series is not None and not args.report:
        raise ConfigError("--series chooses the series plotted in the report",
                          hint="add --report report.html")
    cfg = _preflight(args, flow=False)
    if is_folder_output(args.output):  # a report or a hierarchy: exit 2 before any flow
        check_folder_output(cfg, args.output, args.report)
    _start_server()
    resolve_model(cfg, args.model)  # unknown, or not deepcast's model: exit 2 at once
    report = api.ForecastReport(html=args.report, series=series, report_dir=args.report_dir)
    output = api.ForecastOutput(args.output, formula_guard=args.formula_guard)
    result = _launch(args, api.forecast, args.pipeline, args.model, args.data, args.future,
                     output, report=report)
    if result is not None:
        _print_forecast(args, result)
    return EXIT_OK


def _print_forecast(args: argparse.Namespace, result: Any) -> None:
    if not args.quiet:
        _print_table([{"model": result.model_name, "version": result.model_version,
                       "requested": args.model, "series": result.series, "rows": result.rows,
                       "dropped series": len(result.dropped_series),
                       "fallback series": result.fallback_series,
                       "output": result.output, "report": result.report or ""}])
    print(f"wrote {result.rows} forecasts for {result.series} series to {result.output} "
          f"with {result.model_uri} (version {result.model_version}, {result.model_name}, "
          f"run {result.run_id})")
    if result.report:
        print(f"wrote the report {result.report} (open it in a browser)")
    for note in result.notes:
        print(f"note: {note}")


def cmd_retrain(args: argparse.Namespace) -> int:
    from deepcast.flows import api
    from deepcast.pipelines.ingest import parse_as_of
    from deepcast.pipelines.runs.retrain import tonight_output

    cfg = _preflight(args, flow=False)
    parse_as_of(args.as_of, cfg.data)
    tonight_output(cfg, args.output, args.as_of)  # exit 2 before any flow and any training
    _start_server()
    result = _launch(args, api.retrain, args.pipeline, args.output, args.data,
                     as_of=args.as_of, report_dir=args.report_dir)
    if result is None:
        return EXIT_OK
    print(result.drift_summary)
    if not args.quiet:
        _print_table(result.train.table)
    for note in result.train.notes if result.train else ():
        print(f"note: {note}")
    print(f"{result.status}: {result.message}")
    if not args.quiet:
        print(f"Prefect artifacts: {', '.join(result.artifacts)}")
    return EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    from deepcast.flows.deploy import register, serve_deployment

    _preflight(args, flow=False)
    done, deployment = register(args.pipeline, args.cron, args.timezone, args.output,
                                tuple(args.backfill) if args.backfill else None, args.name,
                                {"data": args.data, "report_dir": args.report_dir})
    if args.json:
        print(_dumps(done), flush=True)
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
    from deepcast.pipelines.runs import store

    cfg = load_config(args.pipeline)
    if args.rollback:
        done = store.rollback(cfg)
        if args.json:
            print(_dumps(done))
        else:
            print(f"champion of {cfg.name}: v{done['from_version']} -> v{done['to_version']} "
                  f"(rolled back at {done['when']})")
        return EXIT_OK
    promotions = store.promotions(cfg)
    if args.json:
        print(_dumps(promotions.to_dict()))
        return EXIT_OK
    if not promotions.history:
        print(f"no promotions yet for {cfg.name} in {promotions.uri}")
    _print_table(promotions.history)
    print(f"\naliases: {promotions.aliases or 'none'}")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.runs import store

    cfg = load_config(args.pipeline)
    overview = store.runs_overview(cfg, args.limit)
    if args.json:
        _print_json(overview)
        return EXIT_OK
    if not overview.runs:
        print(f"no runs yet for {cfg.name} in {overview.uri}")
    _print_table(overview.runs)
    if overview.models:
        print(f"\nmodels of the latest train run {overview.latest_train_run} (holdout "
              "metrics):")
        _print_table(overview.models)
    print(f"\naliases: {overview.aliases or 'none'}  (store: {overview.uri})")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    from deepcast.pipelines.runs.store import local_store, ui_links

    uri, artifacts = local_store()
    # one worker and no job-execution processes: 2 processes instead of ~10 for a local UI
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port), "--workers", "1"]
    if uri.startswith("sqlite:"):
        artifacts.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", artifacts.as_uri()]
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI on {base} (store {uri}); Ctrl-C to stop", file=sys.stderr)
    for name, link in ui_links(uri, base):  # each opens on its training runs
        print(f"  {name}: {link}", file=sys.stderr)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate, "train": cmd_train, "backtest": cmd_backtest,
    "forecast": cmd_forecast, "promote": cmd_promote, "tune": cmd_tune,
    "runs": cmd_runs, "ui": cmd_ui, "retrain": cmd_retrain, "deploy": cmd_deploy,
}
