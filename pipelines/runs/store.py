"""What the runs write to and read from the tracking store (MLflow, through the Tracker).

The jobs of :mod:`deepcast.pipelines.runs`, the public API and the CLI reach the store
only through these functions (besides handing the tracker to the stages that log their own
models), so their calls to the tracker live in one module. The tracking module (MLflow)
is imported when a function runs, never at import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepcast.pipelines.config import PipelineConfig, resolved_config

if TYPE_CHECKING:
    import pandas as pd

    from deepcast.pipelines.promote import PromotionDecision
    from deepcast.pipelines.tracking import LoadedModel, ModelVersionRef, RunDataset, Tracker
    from deepcast.pipelines.tracking.history import TrainingInfo

log = logging.getLogger("deepcast")


def open_tracker(cfg: PipelineConfig) -> Tracker:
    """The tracker of the pipeline (experiment and registered model ``cfg.name``)."""
    from deepcast.pipelines.tracking import Tracker

    return Tracker(cfg.name)


def store_uri(tracker: Tracker) -> str:
    """The tracking URI the runs land in."""
    return tracker.uri


@contextmanager
def parent_run(tracker: Tracker, cfg: PipelineConfig, stage: str, tags: dict[str, str]
               ) -> Iterator[str]:
    """The parent run ``STAGE-NAME`` of a job, with the resolved config as its params; its
    id. Ends FAILED if the block raises."""
    with tracker.run(f"{stage}-{cfg.name}", tags=tags) as parent_id:
        tracker.log_params(resolved_config(cfg))
        yield parent_id


def log_metrics(tracker: Tracker, values: dict[str, float]) -> None:
    """Metrics of the active run."""
    tracker.log_metrics(values)


def describe_run(tracker: Tracker, table: pd.DataFrame, metric: str,
                 notes: list[str] | None = None) -> None:
    """The parent run's description (shown on its page in the MLflow UI): the leaderboard
    as a markdown table, best first, then the notes its reader should know."""
    text = leaderboard_markdown(table, metric)
    if notes:
        text += "\n\nNotes:\n" + "".join(f"\n- {n}" for n in notes)
    tracker.set_description(text)


def leaderboard_markdown(table: pd.DataFrame, metric: str) -> str:
    """``table`` (one row per model) as a markdown table sorted by holdout ``metric``."""
    cols = [c for c in ("model", "type", "mae", "rmse", "smape", "mase", f"skill_{metric}",
                        "epochs", "fit_s") if c in table.columns]
    rows = table.sort_values(metric, na_position="last")[cols]

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.4g}"
        return "" if v is None else str(v).replace("|", "\\|")

    lines = [f"Holdout scores, best {metric} first:", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in rows.itertuples(index=False)]
    return "\n".join(lines)


def log_datasets(tracker: Tracker, df: pd.DataFrame, cfg: PipelineConfig, source: str,
                 data_sha256: str) -> list[RunDataset]:
    """Link the whole validated frame (a backtest's data) to the active run; the datasets,
    for :func:`link_datasets` to give its model runs."""
    from deepcast.pipelines.tracking import run_datasets

    datasets = list(run_datasets(df, cfg.name, source, data_sha256, None))
    tracker.log_inputs(datasets)
    return datasets


def link_datasets(tracker: Tracker, datasets: list[RunDataset], parent_id: str) -> None:
    """Link ``datasets`` to every run nested under ``parent_id`` (the model runs)."""
    for run_id in tracker.history.child_run_ids(parent_id):
        tracker.log_inputs(datasets, run_id=run_id)


def log_train_data(tracker: Tracker, cfg: PipelineConfig, raw: pd.DataFrame,
                   clean: pd.DataFrame, report: Any) -> None:
    """What a train run was given (:func:`log_train_report` of the frames)."""
    log_train_report(tracker, cfg, report, len(clean), clean["unique_id"].nunique(), len(raw))


def log_train_report(tracker: Tracker, cfg: PipelineConfig, report: Any, rows: int,
                     series: int, raw_rows: int) -> None:
    """What a train run was given: row and series counts (dropped, quarantined, filled-in,
    stale), the config, the validation report (and the quarantined rows, when some were
    moved aside)."""
    tracker.log_metrics({"data_rows": rows, "data_series": series,
                         "data_rows_raw": raw_rows,
                         "data_series_dropped": len(report.dropped_series),
                         "data_rows_quarantined": report.quarantined,
                         "data_rows_inserted": report.gaps_filled,
                         "data_values_interpolated": report.interpolated,
                         "data_series_stale": report.n_stale_series})
    tracker.log_dict(resolved_config(cfg), "config/pipeline.json")
    tracker.log_dict(report.to_dict(), "validation/validation.json")
    if report.quarantine_path:
        tracker.log_artifact(report.quarantine_path, "validation")


def save_profile(tracker: Tracker, outcome: Any, raw: pd.DataFrame, cfg: PipelineConfig
                 ) -> dict[str, Any]:
    """Profile the training data (the drift reference) and :func:`log_profile` it."""
    from deepcast.pipelines.drift import profile_window, reference_profile

    profile = reference_profile(raw, profile_window(cfg.drift, cfg.features.lookback))
    return log_profile(tracker, outcome, profile)


def log_profile(tracker: Tracker, outcome: Any, profile: dict[str, Any]) -> dict[str, Any]:
    """Log the drift reference ``profile`` with the parent run and every model run."""
    from deepcast.pipelines.drift import PROFILE_ARTIFACT

    tracker.log_dict(profile, PROFILE_ARTIFACT)
    for model in outcome.models:
        tracker.log_dict(profile, PROFILE_ARTIFACT, run_id=model.run_id)
    return profile


def resolve_model(cfg: PipelineConfig, model: str) -> ModelVersionRef:
    """The registered version behind an alias or number, checked to be deepcast's own
    model without loading it (ConfigError if there is none or it is not)."""
    registry = open_tracker(cfg).registry
    ref = registry.resolve(model)
    registry.verify(ref)
    return ref


def load_model(tracker: Tracker, model: str) -> tuple[ModelVersionRef, LoadedModel]:
    """(version, verified model) of ``models:/NAME@model`` (or version ``model``): the
    version's MLmodel is checked first and its stored script never runs."""
    ref = tracker.registry.resolve(model)
    return ref, tracker.registry.load(ref)


def training_info(tracker: Tracker, ref: ModelVersionRef) -> TrainingInfo:
    """What the forecast report says about a version, read back from its runs."""
    return tracker.history.training_info(ref)


def champion_profile(tracker: Tracker) -> tuple[dict[str, Any] | None, str]:
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


def champion_alias() -> str:
    """The registry alias of the model in production."""
    from deepcast.pipelines.tracking import CHAMPION

    return CHAMPION


def champion_version(tracker: Tracker) -> str | None:
    """The champion's version now; None without one, "?" when the store cannot tell."""
    from deepcast.pipelines.tracking import CHAMPION

    try:
        return tracker.registry.aliases().get(CHAMPION)
    except Exception:  # noqa: BLE001 - the store itself may be what failed
        return "?"


def undo_promotion(tracker: Tracker, decision: PromotionDecision, why: str) -> None:
    """Put the aliases this run moved (``challenger``, and ``champion`` when it promoted)
    back to the versions they named before it; the candidate stays registered."""
    from deepcast.pipelines.promote import revert_promotion

    revert_promotion(tracker.registry, decision, why)


@contextmanager
def aliases_kept_on_failure(tracker: Tracker, stage: str
                            ) -> Iterator[list[PromotionDecision]]:
    """A list for the run's promotion decision: if the block raises after the decision is
    appended (the candidate registered, aliases moved), the aliases are put back as they
    were before the run and the error goes on."""
    decided: list[PromotionDecision] = []
    try:
        yield decided
    except BaseException as exc:
        for decision in decided:
            try:
                undo_promotion(tracker, decision, f"{stage} failed: {exc}")
            except Exception as undo_exc:  # noqa: BLE001 - report, keep the run's error
                log.error("could not restore the registry's aliases: %s", undo_exc)
        raise


def run_url(tracker: Tracker, run_id: str) -> str:
    """The MLflow UI address of a run."""
    return tracker.run_url(run_id)


@dataclass(frozen=True)
class RunsOverview:
    """Recent runs of a pipeline, the models of the latest train run, the aliases."""

    runs: list[dict[str, Any]]
    models: list[dict[str, Any]]
    latest_train_run: str | None
    aliases: dict[str, str]
    uri: str

    def to_dict(self) -> dict[str, Any]:
        """``deepcast runs --json``."""
        return {"runs": self.runs, "models": self.models, "aliases": self.aliases}


def runs_overview(cfg: PipelineConfig, limit: int) -> RunsOverview:
    """The ``limit`` most recent runs and the models of the latest train run."""
    tracker = open_tracker(cfg)
    rows = tracker.history.recent_runs(cfg.evaluation.metric, limit)
    aliases = tracker.registry.aliases()
    latest = next((r["run_id"] for r in rows if r["kind"] == "train"), None)
    models = tracker.history.model_runs(latest, cfg.evaluation.metric) if latest else []
    return RunsOverview(rows, models, latest, aliases, tracker.uri)


@dataclass(frozen=True)
class Promotions:
    """Every champion change of a pipeline, and the aliases now."""

    history: list[dict[str, str]]
    aliases: dict[str, str]
    uri: str

    def to_dict(self) -> dict[str, Any]:
        """``deepcast promote --json``."""
        return {"history": self.history, "aliases": self.aliases}


def promotions(cfg: PipelineConfig) -> Promotions:
    """The promotion history (oldest first) and the aliases."""
    from deepcast.pipelines.promote import history

    tracker = open_tracker(cfg)
    return Promotions(history(tracker.registry), tracker.registry.aliases(), tracker.uri)


def rollback(cfg: PipelineConfig) -> dict[str, str]:
    """Give ``champion`` back to the version the current champion replaced."""
    from deepcast.pipelines.promote import rollback as rollback_champion

    return rollback_champion(open_tracker(cfg).registry)


def local_store() -> tuple[str, Path]:
    """(tracking URI, the default artifact folder) of the store ``deepcast ui`` opens."""
    from deepcast.pipelines.tracking import default_store, tracking_uri

    return tracking_uri(), default_store()[1]


def ui_links(uri: str, base: str) -> list[tuple[str, str]]:
    """(pipeline, link) of the experiments in the store, as ``deepcast ui`` lists them;
    none when the store cannot be read yet (the UI creates it)."""
    from deepcast.pipelines.tracking.store import experiment_links

    try:
        return experiment_links(uri, base)
    except Exception as exc:  # noqa: BLE001  (a listing only; the UI reports the store)
        log.debug("no experiment links: %s", exc)
        return []


def store_failed(exc: BaseException) -> Exception:
    """An error of the store's client as deepcast's one-line RunFailed naming the store."""
    from deepcast.pipelines.tracking import store_failed as failed
    from deepcast.pipelines.tracking import tracking_uri

    return failed(tracking_uri(), exc)
