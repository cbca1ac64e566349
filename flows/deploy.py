"""``deepcast deploy``: a Prefect deployment of ``retrain`` on a cron schedule, served here.

Schedules need a real Prefect server (``PREFECT_API_URL``): the ephemeral API cannot
schedule. Two things Prefect 3.9 does on a redeploy are undone here:

- ``to_deployment`` defaults ``paused`` to False and ``Cron`` defaults ``active`` to True,
  and the server replaces the schedules on update, so a redeploy silently resumes a paused
  deployment or schedule (PrefectHQ/prefect#14973, #19302). We read the existing
  deployment first and carry its ``paused`` flag and the schedule's ``active`` flag over.
- the server deletes only *future* auto-scheduled runs on an update; runs that came due
  while nothing served the deployment stay as ``Late`` and a runner starts them all at
  once (PrefectHQ/prefect#15886). Runs late by more than one schedule period are
  cancelled; the most recent missed tick (late by less than a period) still runs, once.

``serve`` would also pause the deployment when the process stops (``pause_on_shutdown``),
which would then be "kept" on the next deploy: it is turned off. Runs execute one at a
time (``limit=1``) so two retrains never race on the champion alias.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from deepcast.features.errors import ConfigError

log = logging.getLogger("deepcast")

SCHEDULE_SLUG = "deepcast-cron"
MAX_BACKFILL = 1000
START_SERVER = ("start one with `prefect server start --host 127.0.0.1` (UI on "
                "http://127.0.0.1:4200) and `export PREFECT_API_URL=http://127.0.0.1:4200/api`")


def check_timezone(timezone: str | None) -> str:
    """An IANA timezone name (default UTC); ConfigError otherwise."""
    tz = timezone or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone {tz!r} is not an IANA timezone",
                          hint="e.g. --timezone Europe/Berlin, America/New_York, UTC") from None
    return tz


def check_cron(cron: str) -> str:
    """A cron string Prefect accepts; ConfigError otherwise."""
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        return validate_cron_string(cron)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"--cron {cron!r} is not a valid cron expression ({exc})",
                          hint='five fields: minute hour day month weekday, e.g. '
                          '--cron "0 2 * * *" (every day at 02:00)') from None


def parse_day(text: str, what: str, timezone: str) -> dt.datetime:
    """A ``--backfill`` bound (date or ISO timestamp) as an aware datetime in ``timezone``."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--backfill {what} {text!r} is not a date",
                          hint="use ISO dates, e.g. --backfill 2014-06-01 2014-06-30") from None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(timezone))


def require_server() -> str:
    """The URL of a running Prefect server, or ConfigError (ephemeral API, no answer)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ConfigError("deploy needs a Prefect server: PREFECT_API_URL is not set, and "
                          "Prefect's ephemeral API cannot run schedules", hint=START_SERVER)
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=5) as resp:
            ok = resp.status == 200
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"no Prefect server answers at PREFECT_API_URL={url} ({reason})",
                          hint=START_SERVER) from None
    if not ok:
        raise ConfigError(f"the Prefect server at {url} is not healthy", hint=START_SERVER)
    return url


def cron_ticks(cron: str, timezone: str, start: dt.datetime, end: dt.datetime,
               n: int | None = None) -> list[dt.datetime]:
    """The schedule's ticks from ``start`` to ``end`` (inclusive), computed by the same code
    as the Prefect server's scheduler (DST included)."""
    from prefect.server.schemas.schedules import CronSchedule

    schedule = CronSchedule(cron=cron, timezone=timezone)
    return list(asyncio.run(schedule.get_dates(n=n, start=start, end=end)))


def schedule_period(cron: str, timezone: str, now: dt.datetime | None = None) -> dt.timedelta:
    """Time between the schedule's next two ticks (a day for ``0 2 * * *``)."""
    now = now or dt.datetime.now(dt.UTC)
    first, second = cron_ticks(cron, timezone, now, now + dt.timedelta(days=800), n=2)[:2]
    return second - first


def _deployment_state(client: Any, full_name: str) -> tuple[bool | None, bool | None]:
    """(paused, schedule active) of an existing deployment; (None, None) if there is none."""
    from prefect.exceptions import ObjectNotFound

    try:
        existing = client.read_deployment_by_name(full_name)
    except ObjectNotFound:
        return None, None
    schedules = existing.schedules or []
    ours = next((s for s in schedules if s.slug == SCHEDULE_SLUG), None)
    if ours is None and schedules:
        ours = schedules[0]
    return bool(existing.paused), (None if ours is None else bool(ours.active))


def skip_late_runs(client: Any, deployment_id: Any, period: dt.timedelta,
                   now: dt.datetime | None = None) -> list[str]:
    """Cancel the deployment's runs that are still scheduled but late by more than one
    ``period``; the names of those runs."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    cutoff = (now or dt.datetime.now(dt.UTC)) - period
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            expected_start_time=FlowRunFilterExpectedStartTime(before_=cutoff)))
    skipped = []
    for run in runs:
        client.set_flow_run_state(run.id, Cancelled(
            message=f"skipped by deepcast deploy: late by more than one schedule period "
                    f"({period}); only the latest missed tick runs"), force=True)
        skipped.append(run.name)
    return skipped


def create_backfill(client: Any, deployment_id: Any, pipeline_name: str,
                    ticks: list[dt.datetime]) -> list[str]:
    """One flow run per tick, with ``as_of`` = the tick, due now in tick order (an
    idempotency key per tick makes a repeated backfill a no-op); their ids."""
    from prefect.states import Scheduled

    start = dt.datetime.now(dt.UTC)
    ids = []
    for i, tick in enumerate(ticks):
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"as_of": tick.isoformat()},
            state=Scheduled(scheduled_time=start + dt.timedelta(seconds=i)),
            name=f"backfill-{pipeline_name}-{tick:%Y-%m-%dT%H%M}", tags=["backfill"],
            idempotency_key=f"deepcast-backfill-{deployment_id}-{tick.isoformat()}")
        ids.append(str(run.id))
    return ids


def register(pipeline: str, cron: str, timezone: str | None = None, output: str | None = None,
             backfill: tuple[str, str] | None = None, name: str | None = None,
             paths: dict[str, str | None] | None = None) -> tuple[dict[str, Any], Any]:
    """Create or update the deployment ``retrain/NAME`` (paused state kept), cancel its runs
    late by more than a period, create the backfill runs: (what was done, the deployment
    to serve). ``paths``: optional ``data`` / ``report_dir`` parameters of every run."""
    from prefect import get_client
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from deepcast.flows.retrain import retrain
    from deepcast.pipelines.config import load_config
    from deepcast.pipelines.forecast import check_output_path

    cfg = load_config(pipeline)
    tz = check_timezone(timezone)
    check_cron(cron)
    ticks: list[dt.datetime] = []
    if backfill:
        lo, hi = (parse_day(text, what, tz) for text, what in zip(backfill, ("START", "END"),
                                                                 strict=True))
        if hi < lo:
            raise ConfigError(f"--backfill END {backfill[1]} is before START {backfill[0]}",
                              hint="give START first")
        ticks = cron_ticks(cron, tz, lo, hi)
        if not ticks or len(ticks) >= MAX_BACKFILL:
            raise ConfigError(f"--backfill {backfill[0]} {backfill[1]} holds "
                              f"{len(ticks)} tick(s) of {cron!r}", hint=f"give a range with "
                              f"1 to {MAX_BACKFILL - 1} ticks")
    output = output or f"forecasts/{cfg.name}_{{date}}.csv"
    check_output_path(output.replace("{date}", "date"))
    require_server()

    name = name or cfg.name
    params: dict[str, Any] = {"pipeline": str(Path(pipeline).resolve()),
                              "output": str(Path(output).resolve())}
    params.update({k: str(Path(v).resolve()) for k, v in (paths or {}).items() if v})
    with get_client(sync_client=True) as client:
        paused, active = _deployment_state(client, f"retrain/{name}")
        deployment = retrain.to_deployment(
            name=name, parameters=params, paused=bool(paused),
            schedule=Cron(cron, timezone=tz, slug=SCHEDULE_SLUG,
                          active=True if active is None else active),
            description=f"deepcast retrain of {cfg.name} ({pipeline})",
            tags=["deepcast", cfg.name],
            # import deepcast.flows.retrain as a module of the installed package (a file path would
            # be run as a script, where `flows` resolves to flows/flows.py)
            entrypoint_type=EntrypointType.MODULE_PATH)
        deployment_id = deployment.apply()
        late = skip_late_runs(client, deployment_id, schedule_period(cron, tz))
        runs = create_backfill(client, deployment_id, cfg.name, ticks) if ticks else []
    done = {"deployment": f"retrain/{name}", "deployment_id": str(deployment_id),
            "cron": cron, "timezone": tz, "paused": bool(paused),
            "schedule_active": True if active is None else active,
            "existed": paused is not None, "late_runs_skipped": late,
            "backfill_runs": runs, "parameters": params}
    return done, deployment


def serve_deployment(deployment: Any) -> None:
    """Run the deployment's scheduled and triggered runs in this process until stopped:
    one at a time, and without pausing the deployment on the way out."""
    from prefect import serve

    serve(deployment, pause_on_shutdown=False, limit=1, print_starting_message=False)
