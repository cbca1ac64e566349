"""Prefect flow ``retrain``: what runs every night, unattended.

A thin wrapper around :func:`deepcast.pipelines.runs.retrain` (ingest -> validate -> drift
check -> train -> gate -> forecast with the champion), whose steps run as tasks; I/O tasks
retry. Every run, failed ones included, leaves Prefect artifacts: the model scores (table),
the decision (markdown) and links to the MLflow run and the forecast file.
"""

from __future__ import annotations

import math
import re
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from deepcast.flows.steps import InMemory, PrefectSteps, inputs, pipeline_stem, run_name
from deepcast.pipelines import runs
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.results import RetrainResult
from deepcast.pipelines.runs.retrain import as_of_day


def artifact_key(name: str, kind: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes): ``NAME-KIND``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "pipeline"
    return f"{slug}-{kind}"


def _run_name_retrain() -> str:
    params = flow_run.parameters
    as_of = params.get("as_of")
    if not as_of:
        return run_name("retrain")
    return f"retrain-{pipeline_stem(params.get('pipeline'))}-as-of-{as_of_day(as_of)}"


def _clean(value: Any) -> Any:
    """JSON-safe cell: NaN / inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _decision_markdown(cfg: PipelineConfig, result: RetrainResult) -> str:
    """The run's verdict, scores and links as markdown."""
    d = result.train.decision if result.train else None
    lines = [f"# retrain of `{cfg.name}` ({result.day})", "",
             f"**{result.status.upper()}**: {result.message}", ""]
    if d:
        champ = ("none" if not d.champion_version else
                 f"v{d.champion_version} {d.champion_score:.4f}"
                 if d.champion_score is not None else f"v{d.champion_version} (not "
                 "re-scored)")
        lines += ["| | |", "|---|---|",
                  f"| candidate | {d.candidate} v{d.candidate_version}: "
                  f"{d.candidate_score:.4f} |",
                  f"| seasonal naive | {d.seasonal_naive_score:.4f} |",
                  f"| champion before | {champ} |",
                  f"| gate | {d.gate} ({d.metric}, margin {cfg.promotion.margin}) |",
                  f"| decision | {'promoted' if d.promoted else 'kept champion'}: "
                  f"{d.reason} |", ""]
        if d.by_level:
            lines += [f"| level ({d.metric}) | candidate | champion | seasonal naive |",
                      "|---|---|---|---|"]
            lines += [f"| {lv}{' (decides)' if lv == d.level else ''} | "
                      + " | ".join("" if v is None else f"{v:.4f}" for v in row.values())
                      + " |" for lv, row in d.by_level.items()]
            lines.append("")
    lines += ["## Drift", "", "```", result.drift_summary, "```", "", "## Links", ""]
    lines += [f"- {text}: [{url}]({url})" for text, url in result.links]
    return "\n".join(lines) + "\n"


def publish_artifacts(cfg: PipelineConfig, result: RetrainResult) -> list[str]:
    """Prefect artifacts of the run: model scores, decision, links; their keys."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    keys = []
    train = result.train
    if train:
        best, verdict = train.decision.candidate, \
            "promoted" if train.decision.promoted else "kept champion"
        rows = [{k: _clean(v) for k, v in row.items()} | {
            "gate": verdict if row["model"] == best else ""} for row in train.table]
        key = artifact_key(cfg.name, "model-scores")
        create_table_artifact(table=rows, key=key, description=(
            f"holdout scores of every model ({train.metric}; skill vs seasonal naive)"))
        keys.append(key)
    key = artifact_key(cfg.name, "decision")
    create_markdown_artifact(markdown=_decision_markdown(cfg, result), key=key,
                             description=f"retrain {result.status}")
    keys.append(key)
    for kind, (text, url) in zip(("mlflow-run", "forecast-file"), result.links, strict=False):
        key = artifact_key(cfg.name, kind)
        create_link_artifact(link=url, link_text=text, key=key)
        keys.append(key)
    return keys


@flow(name="retrain", flow_run_name=_run_name_retrain, log_prints=False)
def retrain(pipeline: str | PipelineConfig, output: str, data: str | InMemory | None = None,
            as_of: str | None = None, report_dir: str | None = None) -> RetrainResult:
    """Ingest -> validate -> drift check -> train -> gate -> forecast with the champion ->
    publish. ``output`` may hold ``{date}`` (the run's date); ``as_of`` keeps rows with
    ``ds <= as_of`` (backfills)."""
    cfg, given = inputs(pipeline, data, report_dir)
    return runs.retrain(cfg, output, given, as_of, PrefectSteps(publish=publish_artifacts))
