"""The nightly ``retrain`` job, unattended.

ingest the newest data (rows up to ``as_of`` when given) -> validate -> drift check against
the champion's reference profile -> train every model -> promotion gate -> batch forecast
with the (possibly new) champion -> write the file atomically.

A failure at any step leaves the registry's aliases and the last good forecast file as
they were before the run: the gate moves ``champion`` only after every model is trained
and scored, the forecast file is replaced by an atomic rename, and when a step after the
registration fails (the forecast, say) ``challenger`` and ``champion`` go back to the
versions they named before the run; the new version stays registered, tagged with why.
Every run, failed ones included, is published through ``steps.publish`` (Prefect
artifacts under the ``retrain`` flow); a run that went through stays done when only its
publishing fails.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.features.errors import ConfigError
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.results import ForecastResult, RetrainResult, TrainResult
from deepcast.pipelines.runs import store
from deepcast.pipelines.runs.base import FROM_CONFIG, PLAIN, RunInputs, Steps, validated
from deepcast.pipelines.runs.forecast import ForecastRequest, forecast
from deepcast.pipelines.runs.jobs import train_and_promote

log = logging.getLogger("deepcast")


def as_of_day(as_of: str | None) -> str:
    """The date a run is for: ``as_of``'s date (or step), else today (UTC)."""
    if as_of:
        text = str(as_of)
        return text if text.lstrip("-").isdigit() else text[:10]
    return f"{dt.datetime.now(dt.UTC):%Y-%m-%d}"


def dated_output(output: str, as_of: str | None) -> str:
    """``output`` with ``{date}`` replaced by the run's date (one file per day)."""
    return output.replace("{date}", as_of_day(as_of))


def tonight_output(cfg: PipelineConfig, output: str, as_of: str | None) -> str:
    """The run's dated output, checked before the night's training (a folder: one that a
    forecast of this pipeline may replace), not after it."""
    from deepcast.pipelines.forecast import check_output_path
    from deepcast.pipelines.forecast_folder import is_folder_output
    from deepcast.pipelines.runs.forecast_shards import check_folder_output

    output = dated_output(output, as_of)
    check_output_path(output)
    if is_folder_output(output):
        check_folder_output(cfg, output)
    return output


def check_drift(today: pd.DataFrame | dict[str, Any], cfg: PipelineConfig,
                profile: dict[str, Any] | None, note: str) -> Any:
    """The drift report of today's rows (or their profile, merged from shards) against the
    champion's profile (skipped without one, or under ``drift.enabled: false``)."""
    from deepcast.pipelines.drift import check_drift as compare
    from deepcast.pipelines.drift import check_profile_drift, skipped, thresholds_of

    if not cfg.drift.enabled:
        return skipped("drift.enabled is false")
    if profile is None:
        return skipped(note)
    check = check_profile_drift if isinstance(today, dict) else compare
    return check(profile, today, thresholds_of(cfg.drift), cfg.drift.on_breach, note)


@dataclass
class _Night:
    """How far a run got: the step it is at, and what the steps before it returned."""

    step: str = "ingest and validate"
    drift: Any = None
    train: TrainResult | None = None


def retrain(cfg: PipelineConfig, output: str, inputs: RunInputs = FROM_CONFIG,
            as_of: str | None = None, steps: Steps = PLAIN) -> RetrainResult:
    """Ingest -> validate -> drift check -> train -> gate -> forecast with the champion ->
    publish. ``output`` may hold ``{date}`` (the run's date); ``as_of`` keeps rows with
    ``ds <= as_of`` (backfills). A failed or blocked run is published, then raises.
    From shards (:func:`~.train_from_shards.trains_in_shards`), the drift check compares
    the profile merged from the shards, and the forecast reads the data again (a folder
    output shard by shard)."""
    from deepcast.pipelines.runs.train_from_shards import trains_in_shards

    if as_of and trains_in_shards(cfg, inputs):
        raise ConfigError("--as-of cuts every series at a date, and training from shards "
                          "reads each shard as it is",
                          hint="drop --as-of, or run the backfill with execution.runner: "
                          "serial")
    output = tonight_output(cfg, output, as_of)
    tracker = store.open_tracker(cfg)
    night = _Night()
    base = RetrainResult(pipeline=cfg.name, day=as_of_day(as_of), as_of=as_of, output=output)
    try:
        train, fc = _run(cfg, output, inputs, as_of, steps, tracker, night)
    except Exception as exc:
        if night.train is not None:  # registered, then a later step failed
            _restore_aliases(steps, tracker, night, exc)
        failed = _failed(base, night, exc, store.champion_version(tracker),
                         _links(tracker, output, night.train and night.train.parent_run_id))
        try:
            steps.publish(cfg, failed)
        except Exception as publish_exc:  # never hide the run's own error
            log.warning("could not publish the run's artifacts: %s", publish_exc)
        raise
    done = replace(base, drift=night.drift, train=train, forecast=fc,
                   drift_summary=night.drift.summary(), status=_status(train),
                   message=_message(train, fc),
                   links=_links(tracker, str(fc.output), train.parent_run_id, fc.run_id))
    try:  # the forecast is written by the new champion: the run has gone through
        return replace(done, artifacts=steps.publish(cfg, done))
    except Exception as publish_exc:  # noqa: BLE001 - reporting only
        log.warning("could not publish the run's artifacts: %s", publish_exc)
        return done


def _run(cfg: PipelineConfig, output: str, inputs: RunInputs, as_of: str | None,
         steps: Steps, tracker: Any, night: _Night) -> tuple[TrainResult, ForecastResult]:
    """The steps of the night, ``night`` recording how far they got."""
    from deepcast.pipelines.runs.train_from_shards import train_from_shards, trains_in_shards

    request = ForecastRequest(model=store.champion_alias(), output=output)
    if trains_in_shards(cfg, inputs):
        night.train = train_from_shards(cfg, inputs, steps, lambda shards: _drift_checked(
            cfg, steps, night, tracker, shards.profile))
        night.step = "forecast"
        return night.train, forecast(cfg, inputs, request, steps)
    data = validated(cfg, inputs, steps, as_of)
    _drift_checked(cfg, steps, night, tracker, data.raw)
    night.train = train_and_promote(cfg, inputs, data, steps, steps.mapper(cfg))
    night.step = "forecast"
    return night.train, forecast(cfg, inputs, request, steps, raw=data.raw)


def _drift_checked(cfg: PipelineConfig, steps: Steps, night: _Night, tracker: Any,
                   today: pd.DataFrame | dict[str, Any]) -> None:
    """The drift check of today's rows or profile against the champion's; DriftBlocked
    stops the night."""
    from deepcast.pipelines.drift import DriftBlocked

    night.step = "drift check"
    profile, note = steps.io("load-reference-profile", store.champion_profile, tracker)
    night.drift = steps.run("drift-check", check_drift, today, cfg, profile, note)
    if night.drift.blocking:
        raise DriftBlocked(night.drift)
    if night.drift.breached:
        log.warning("%s", night.drift.summary())
    night.step = "train and promote"


def _restore_aliases(steps: Steps, tracker: Any, night: _Night, exc: Exception) -> None:
    """After a failure past the registration: ``champion`` and ``challenger`` back to the
    versions they named before the run (the new version stays, tagged with why)."""
    try:
        steps.io("undo-promotion", store.undo_promotion, tracker, night.train.decision,
                 f"{night.step} failed: {exc}")
    except Exception as undo_exc:  # noqa: BLE001 - report, keep the run's own error
        log.error("could not restore the registry's aliases: %s", undo_exc)


def _status(train: TrainResult) -> str:
    return "promoted" if train.decision.promoted else "kept"


def _message(train: TrainResult, fc: ForecastResult) -> str:
    """The verdict of a run that went through."""
    d = train.decision
    kept = "" if d.promoted else f"champion v{d.champion_version} kept"
    return (f"{d.candidate} v{d.candidate_version} "
            f"{'promoted to champion' if d.promoted else 'registered as challenger; '}{kept}"
            f"; forecast of {fc.series} series by champion v{fc.model_version} written to "
            f"{fc.output}")


def _failed(base: RetrainResult, night: _Night, exc: BaseException, champion: str | None,
            links: list[tuple[str, str]]) -> RetrainResult:
    """The record of a run that failed (or that the drift check stopped)."""
    from deepcast.pipelines.drift import DriftBlocked

    blocked = isinstance(exc, DriftBlocked)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    what = "stopped by the drift check" if blocked else f"failed at {night.step}"
    return replace(
        base, drift=night.drift, train=night.train,
        drift_summary=night.drift.summary() if night.drift is not None else "not reached",
        status="blocked" if blocked else "failed",
        message=(f"{what}: {first}. Champion {'v' + champion if champion else '(none)'} "
                 f"unchanged{_kept_aliases(night)}; forecast file {base.output} not "
                 "rewritten (the last good one stays)."),
        links=links)


def _kept_aliases(night: _Night) -> str:
    """What the message says of a version registered before the failure."""
    if night.train is None or not night.train.decision.candidate_version:
        return ""
    return (f"; v{night.train.decision.candidate_version} stays registered with no alias "
            "(champion and challenger as before the run)")


def _links(tracker: Any, output: str, parent_run_id: str | None,
           champion_run_id: str | None = None) -> list[tuple[str, str]]:
    """(text, url): the train run, the forecast file, the champion's model run."""
    links = []
    if parent_run_id:
        links.append((f"MLflow train run {parent_run_id}", store.run_url(tracker, parent_run_id)))
    target = output if output.startswith("sql://") else Path(output).resolve().as_uri()
    links.append((f"forecast file {output}", target))
    if champion_run_id:
        links.append((f"MLflow run of the champion model {champion_run_id}",
                      store.run_url(tracker, champion_run_id)))
    return links
