"""Prefect flow ``retrain``: what runs every night, unattended.

ingest the newest data (rows up to ``as_of`` when given) -> validate -> drift check against
the champion's reference profile -> train every model -> promotion gate -> batch forecast
with the (possibly new) champion -> write the file atomically. Each step is a task (the
stages are the ones ``train`` and ``forecast`` run); I/O tasks retry.

A failure at any step leaves the champion and the last good forecast file in place: the
gate moves ``champion`` only after every model is trained and scored, the forecast file is
replaced by an atomic rename, and if the forecast with a just-promoted champion fails the
promotion is undone. Every run, failed ones included, leaves Prefect artifacts: the model
scores (table), the decision (markdown) and links to the MLflow run and the forecast file.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run

from deepcast.flows.flows import (
    IO,
    PURE,
    _forecast,
    _run_name,
    _train_and_promote,
    _validated,
    fan_out,
)
from deepcast.pipelines.config import PipelineConfig, load_config

log = logging.getLogger("deepcast")


def artifact_key(name: str, kind: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes): ``NAME-KIND``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "pipeline"
    return f"{slug}-{kind}"


def as_of_day(as_of: str | None) -> str:
    """The date a run is for: ``as_of``'s date (or step), else today (UTC)."""
    if as_of:
        text = str(as_of)
        return text if text.lstrip("-").isdigit() else text[:10]
    return f"{dt.datetime.now(dt.UTC):%Y-%m-%d}"


def dated_output(output: str, as_of: str | None) -> str:
    """``output`` with ``{date}`` replaced by the run's date (one file per day)."""
    return output.replace("{date}", as_of_day(as_of))


def _run_name_retrain() -> str:
    params = flow_run.parameters
    as_of = params.get("as_of")
    if not as_of:
        return _run_name("retrain")
    return f"retrain-{Path(str(params.get('pipeline', 'pipeline'))).stem}-as-of-{as_of_day(as_of)}"


@task(name="load-reference-profile", **IO)
def reference_task(tracker: Any) -> tuple[dict[str, Any] | None, str]:
    """(profile, note) of the current champion; None with the reason when there is none."""
    from deepcast.pipelines.drift import PROFILE_ARTIFACT
    from deepcast.pipelines.tracking import CHAMPION

    if CHAMPION not in tracker.registry.aliases():
        return None, "no champion yet (first run): nothing to compare with"
    ref = tracker.registry.resolve(CHAMPION)
    profile = tracker.history.load_dict(ref.run_id, PROFILE_ARTIFACT) if ref.run_id else None
    if profile is None:
        return None, f"champion v{ref.version} has no reference profile (trained before " \
                     "drift checks existed)"
    return profile, f"against champion v{ref.version}"


@task(name="drift-check", **PURE)
def drift_task(raw: Any, cfg: PipelineConfig, profile: dict[str, Any] | None, note: str):
    from deepcast.pipelines.drift import check_drift, skipped, thresholds_of

    if not cfg.drift.enabled:
        return skipped("drift.enabled is false")
    if profile is None:
        return skipped(note)
    return check_drift(profile, raw, thresholds_of(cfg.drift), cfg.drift.on_breach, note)


@task(name="undo-promotion", **IO)
def undo_promotion_task(tracker: Any, decision: dict[str, Any], why: str) -> None:
    from deepcast.pipelines.promote import PromotionDecision, revert_promotion

    revert_promotion(tracker.registry, PromotionDecision(**decision), why)


def _clean(value: Any) -> Any:
    """JSON-safe cell: NaN / inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _decision_markdown(cfg: PipelineConfig, outcome: dict[str, Any]) -> str:
    """The run's verdict, scores and links as markdown."""
    d = (outcome.get("train") or {}).get("decision")
    lines = [f"# retrain of `{cfg.name}` ({outcome['day']})", "",
             f"**{outcome['status'].upper()}**: {outcome['message']}", ""]
    if d:
        champ = ("none" if not d["champion_version"] else
                 f"v{d['champion_version']} {d['champion_score']:.4f}"
                 if d["champion_score"] is not None else f"v{d['champion_version']} (not "
                 "re-scored)")
        lines += ["| | |", "|---|---|",
                  f"| candidate | {d['candidate']} v{d['candidate_version']}: "
                  f"{d['candidate_score']:.4f} |",
                  f"| seasonal naive | {d['seasonal_naive_score']:.4f} |",
                  f"| champion before | {champ} |",
                  f"| gate | {d['gate']} ({d['metric']}, margin {cfg.promotion.margin}) |",
                  f"| decision | {'promoted' if d['promoted'] else 'kept champion'}: "
                  f"{d['reason']} |", ""]
    lines += ["## Drift", "", "```", outcome["drift_summary"], "```", "", "## Links", ""]
    lines += [f"- {text}: [{url}]({url})" for text, url in outcome["links"]]
    return "\n".join(lines) + "\n"


@task(name="publish-artifacts", **IO)
def publish_task(cfg: PipelineConfig, outcome: dict[str, Any]) -> list[str]:
    """Prefect artifacts of the run: model scores, decision, links; their keys."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    keys = []
    train = outcome.get("train")
    if train:
        best = train["decision"]["candidate"]
        rows = [{k: _clean(v) for k, v in row.items()} | {
            "gate": ("promoted" if train["decision"]["promoted"] else "kept champion")
            if row["model"] == best else ""} for row in train["table"]]
        key = artifact_key(cfg.name, "model-scores")
        create_table_artifact(table=rows, key=key, description=(
            f"holdout scores of every model ({train['metric']}; skill vs seasonal naive)"))
        keys.append(key)
    key = artifact_key(cfg.name, "decision")
    create_markdown_artifact(markdown=_decision_markdown(cfg, outcome), key=key,
                             description=f"retrain {outcome['status']}")
    keys.append(key)
    for kind, (text, url) in zip(("mlflow-run", "forecast-file"), outcome["links"],
                                 strict=False):
        key = artifact_key(cfg.name, kind)
        create_link_artifact(link=url, link_text=text, key=key)
        keys.append(key)
    return keys


def _links(tracker: Any, output: str, parent_run_id: str | None,
           champion_run_id: str | None) -> list[tuple[str, str]]:
    """(text, url): the train run, the forecast file, the champion's model run."""
    links = []
    if parent_run_id:
        links.append((f"MLflow train run {parent_run_id}", tracker.run_url(parent_run_id)))
    target = output if output.startswith("sql://") else Path(output).resolve().as_uri()
    links.append((f"forecast file {output}", target))
    if champion_run_id:
        links.append((f"MLflow run of the champion model {champion_run_id}",
                      tracker.run_url(champion_run_id)))
    return links


@flow(name="retrain", flow_run_name=_run_name_retrain, log_prints=False)
def retrain(pipeline: str, output: str, data: str | None = None, as_of: str | None = None,
            report_dir: str | None = None) -> dict[str, Any]:
    """Ingest -> validate -> drift check -> train -> gate -> forecast with the champion ->
    publish. ``output`` may hold ``{date}`` (the run's date); ``as_of`` keeps rows with
    ``ds <= as_of`` (backfills)."""
    from deepcast.pipelines.drift import DriftBlocked
    from deepcast.pipelines.forecast import check_output_path
    from deepcast.pipelines.tracking import CHAMPION, Tracker

    cfg = load_config(pipeline)
    output = dated_output(output, as_of)
    check_output_path(output)
    tracker = Tracker(cfg.name)
    outcome: dict[str, Any] = {"pipeline": cfg.name, "day": as_of_day(as_of), "as_of": as_of,
                               "output": output, "drift": None, "train": None,
                               "forecast": None, "drift_summary": "not reached"}
    step = "ingest and validate"
    try:
        source, raw, clean, report = _validated(cfg, data, report_dir, as_of)
        step = "drift check"
        profile, note = reference_task(tracker)
        drift = drift_task(raw, cfg, profile, note)
        outcome["drift"], outcome["drift_summary"] = drift.to_dict(), drift.summary()
        if drift.blocking:
            raise DriftBlocked(drift)
        if drift.breached:
            log.warning("%s", drift.summary())
        step = "train and promote"
        train = _train_and_promote(cfg, pipeline, source, raw, clean, report, fan_out(cfg))
        outcome["train"] = train
        step = "forecast"
        try:
            forecast = _forecast(cfg, tracker, CHAMPION, output, source, report_dir, raw=raw)
        except Exception as exc:
            try:
                undo_promotion_task(tracker, train["decision"], f"forecast failed: {exc}")
            except Exception as undo_exc:  # noqa: BLE001 - report, keep the run's own error
                log.error("could not undo the promotion: %s", undo_exc)
            raise
    except Exception as exc:
        try:
            champion = tracker.registry.aliases().get(CHAMPION)
        except Exception:  # noqa: BLE001 - the store itself may be what failed
            champion = "?"
        blocked = isinstance(exc, DriftBlocked)
        outcome.update(
            status="blocked" if blocked else "failed",
            message=(f"{'stopped by the drift check' if blocked else f'failed at {step}'}: "
                     f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
                     f"Champion {'v' + champion if champion else '(none)'} unchanged; "
                     f"forecast file {output} not rewritten (the last good one stays)."),
            links=_links(tracker, output, (outcome["train"] or {}).get("parent_run_id"),
                         None))
        try:
            outcome["artifacts"] = publish_task(cfg, outcome)
        except Exception as publish_exc:  # never hide the run's own error
            log.warning("could not publish the run's artifacts: %s", publish_exc)
        raise
    d = train["decision"]
    outcome.update(
        forecast=forecast,
        status="promoted" if d["promoted"] else "kept",
        message=(f"{d['candidate']} v{d['candidate_version']} "
                 f"{'promoted to champion' if d['promoted'] else 'registered as challenger; '}"
                 f"{'' if d['promoted'] else 'champion v' + str(d['champion_version']) + ' kept'}"
                 f"; forecast of {forecast['series']} series by champion "
                 f"v{forecast['model_version']} written to {forecast['output']}"),
        links=_links(tracker, str(forecast["output"]), train["parent_run_id"],
                     forecast["run_id"]))
    outcome["artifacts"] = publish_task(cfg, outcome)
    return outcome
