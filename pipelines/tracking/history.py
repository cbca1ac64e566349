"""Read side of the store: the tables ``deepcast runs`` prints, what the forecast report says
about a registered version, and JSON artifacts read back from earlier runs."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.pipelines.tracking import tags as tag
from deepcast.pipelines.tracking.registry import ModelVersionRef, Registry
from deepcast.pipelines.tracking.store import Store

PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own tag on nested runs


@dataclass(frozen=True)
class TrainingData:
    """The data a training run was given, as the run recorded it ('' / None where an
    older run lacks it)."""

    sha256: str = ""
    source: str = ""
    start: str = ""
    end: str = ""
    n_series: float | None = None
    n_rows: float | None = None


@dataclass(frozen=True)
class SiblingModels:
    """The models one train run logged: its id, model name -> logged model URI, its tags."""

    parent_run_id: str
    uris: dict[str, str]
    parent_tags: dict[str, str]
    runs: dict[str, str] = field(default_factory=dict)  # model name -> its model run's id


@dataclass(frozen=True)
class GateRecord:
    """The promotion gate's decision on a version, from its tags ('' where not recorded);
    ``scores``: the candidate's score on the gate's windows per metric."""

    decision: str = ""
    reason: str = ""
    gate: str = ""
    scores: Mapping[str, str] = field(default_factory=dict)
    champion_score: str = ""
    seasonal_naive_score: str = ""

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> GateRecord:
        """The record of a version's tags (``deepcast.decision``, ``deepcast.gate_mase``...)."""
        plain = {k.removeprefix(tag.PREFIX): v for k, v in tags.items()}
        scores = {k.removeprefix("gate_"): v for k, v in plain.items() if k.startswith("gate_")}
        return cls(decision=plain.get("decision", ""), reason=plain.get("reason", ""),
                   gate=plain.get("gate", ""), scores=scores,
                   champion_score=plain.get("champion_score", ""),
                   seasonal_naive_score=plain.get("seasonal_naive_score", ""))


@dataclass(frozen=True)
class TrainingInfo:
    """What the forecast report says about a registered version, read back from the runs
    that made it: the model run's scores (``metrics``), its training data, the gate's
    decision, the parent run's ``leaderboard`` (rows) and the model's holdout metrics per
    series (``per_series``); None where an older run lacks them."""

    registered_model: str
    version: str
    model_name: str = ""
    model_type: str = ""
    run_id: str = ""
    parent_run_id: str = ""
    trained_at: str = ""
    registered_at: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    data: TrainingData = TrainingData()
    gate: GateRecord = GateRecord()
    leaderboard: list[dict[str, Any]] | None = field(default=None, compare=False)
    per_series: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    tracking_uri: str = ""


def _when(ms: int | None) -> str:
    return "" if not ms else pd.Timestamp(ms, unit="ms", tz="UTC").strftime(
        "%Y-%m-%d %H:%M UTC")


class History:
    """Runs and versions of one pipeline as rows and dicts, for people and reports."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.client = store.client

    def load_dict(self, run_id: str, artifact_file: str) -> dict[str, Any] | None:
        """A JSON artifact of a run, or None when the run has no such artifact."""
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact_file}")
        except (MlflowException, OSError):
            return None

    def download_folder(self, run_id: str, folder: str, dst: str | Path) -> Path | None:
        """A run's artifact ``folder`` copied under ``dst``; None when the run has none."""
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            path = Path(mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=folder, dst_path=str(dst),
                tracking_uri=self.store.uri))
        except (MlflowException, OSError):
            return None
        return path if path.is_dir() and any(path.iterdir()) else None

    def recent_runs(self, metric: str, limit: int = 10) -> list[dict[str, Any]]:
        """Recent parent runs (train, backtest, tune) with their best model, score and the
        gate's decision, newest first."""
        exp = self.client.get_experiment_by_name(self.store.experiment)
        if exp is None:
            return []
        runs = self.client.search_runs([exp.experiment_id], order_by=["start_time DESC"],
                                       max_results=max(limit * 20, 50))
        rows = []
        for r in runs:
            tags = r.data.tags
            if PARENT_RUN_TAG in tags:
                continue
            rows.append({
                "run_id": r.info.run_id,
                "kind": tags.get(tag.STAGE, "train"),
                "started": pd.Timestamp(r.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M"),
                "status": r.info.status,
                "best_model": tags.get(tag.BEST_MODEL, ""),
                f"best_{metric}": r.data.metrics.get(f"best_holdout_{metric}"),
                f"seasonal_naive_{metric}": r.data.metrics.get(f"seasonal_naive_holdout_{metric}"),
                "version": tags.get(tag.PROMOTION_CANDIDATE_VERSION, ""),
                "decision": tags.get(tag.PROMOTION_DECISION, ""),
            })
            if len(rows) >= limit:
                break
        return rows

    def _alias_marks(self) -> dict[str, list[str]]:
        """run id -> ``champion (vN)`` / ``challenger (vN)`` marks of the aliases now."""
        by_run: dict[str, list[str]] = {}
        for alias, version in self.registry.aliases().items():
            try:
                mv = self.client.get_model_version(self.registry.name, version)
            except Exception:  # noqa: BLE001 (a deleted version: no mark)
                continue
            by_run.setdefault(mv.run_id, []).append(f"{alias} (v{version})")
        return by_run

    def child_run_ids(self, parent_run_id: str) -> list[str]:
        """Ids of the runs nested under ``parent_run_id``, oldest first."""
        return [r.info.run_id for r in self._children(parent_run_id)]

    def _children(self, parent_run_id: str) -> list[Any]:
        parent = self.client.get_run(parent_run_id)
        return self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.{PARENT_RUN_TAG} = '{parent_run_id}'",
            order_by=["start_time ASC"])

    def sibling_models(self, run_id: str) -> SiblingModels:
        """The train run that logged model run ``run_id``, and the logged model of every
        model run in it by model name (runs logged before deepcast tagged the URI are left
        out)."""
        run = self.client.get_run(run_id)
        parent_id = run.data.tags.get(PARENT_RUN_TAG, "")
        if not parent_id:
            return SiblingModels("", {}, {})
        parent = self.client.get_run(parent_id)
        children = [r for r in self._children(parent_id) if tag.MODEL_URI in r.data.tags]
        return SiblingModels(parent_id, {r.info.run_name: r.data.tags[tag.MODEL_URI]
                                         for r in children}, dict(parent.data.tags),
                             {r.info.run_name: r.info.run_id for r in children})

    def model_runs(self, parent_run_id: str, metric: str) -> list[dict[str, Any]]:
        """The model runs of one parent run with their scores (as the MLflow UI shows
        them), marking the models that are ``champion`` / ``challenger`` now."""
        children = self._children(parent_run_id)
        by_run = self._alias_marks()
        rows = []
        for r in children:
            m = r.data.metrics
            prefix = "backtest_" if r.data.tags.get(tag.STAGE) == "backtest" else "holdout_"
            rows.append({"model": r.info.run_name,
                         "type": r.data.tags.get(tag.MODEL_TYPE, ""),
                         **{k: m.get(prefix + k) for k in ("mae", "rmse", "smape", "mase")},
                         f"skill_{metric}": m.get(f"skill_{metric}",
                                                  m.get(f"backtest_skill_{metric}")),
                         "registry": ", ".join(by_run.get(r.info.run_id, [])),
                         "run_id": r.info.run_id})
        return rows

    def _report_artifacts(self, run_id: str, parent_id: str
                          ) -> tuple[Any, pd.DataFrame | None]:
        """(leaderboard of the parent run, per-series holdout metrics of the model run);
        None for what an older run lacks."""
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        leaderboard, per_series = None, None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                if parent_id:
                    path = download_artifacts(run_id=parent_id, artifact_path="leaderboard.json",
                                              dst_path=tmp)
                    leaderboard = json.loads(Path(path).read_text())
                if run_id:
                    path = download_artifacts(run_id=run_id, dst_path=tmp,
                                              artifact_path="holdout/per_series_metrics.csv")
                    per_series = pd.read_csv(path, dtype={"unique_id": str})
            except (MlflowException, OSError) as exc:
                logging.getLogger("deepcast").debug("report: artifact missing: %s", exc)
        return leaderboard, per_series

    def training_info(self, ref: ModelVersionRef) -> TrainingInfo:
        """What the forecast report says about a registered version, read back from the
        runs that made it (see :class:`TrainingInfo`)."""
        run = self.client.get_run(ref.run_id) if ref.run_id else None
        tags = dict(run.data.tags) if run else {}
        parent_id = tags.get(PARENT_RUN_TAG, "")
        parent = self.client.get_run(parent_id) if parent_id else None
        ptags = dict(parent.data.tags) if parent else {}
        pmetrics = dict(parent.data.metrics) if parent else {}
        mv = self.client.get_model_version(self.registry.name, ref.version)
        leaderboard, per_series = self._report_artifacts(ref.run_id, parent_id)
        data = TrainingData(sha256=ptags.get(tag.DATA_SHA256, ""),
                            source=ptags.get(tag.DATA_PATH, ""),
                            start=ptags.get(tag.DATA_START, ""),
                            end=ptags.get(tag.DATA_END, ""),
                            n_series=pmetrics.get("data_series"),
                            n_rows=pmetrics.get("data_rows"))
        return TrainingInfo(
            registered_model=ref.name, version=ref.version,
            model_name=run.info.run_name if run else "",
            model_type=tags.get(tag.MODEL_TYPE, ""), run_id=ref.run_id,
            parent_run_id=parent_id,
            trained_at=_when(parent.info.start_time if parent else None),
            registered_at=_when(mv.creation_timestamp),
            metrics=dict(run.data.metrics) if run else {}, data=data,
            gate=GateRecord.from_tags(mv.tags or {}), leaderboard=leaderboard,
            per_series=per_series, tracking_uri=self.store.uri)
