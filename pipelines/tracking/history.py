"""Read side of the store: the tables ``deepcast runs`` prints, what the forecast report says
about a registered version, and JSON artifacts read back from earlier runs."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.pipelines.tracking import tags as tag
from deepcast.pipelines.tracking.registry import ModelVersionRef, Registry
from deepcast.pipelines.tracking.store import Store

PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own tag on nested runs


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

    def model_runs(self, parent_run_id: str, metric: str) -> list[dict[str, Any]]:
        """The model runs of one parent run with their scores (as the MLflow UI shows
        them), marking the models that are ``champion`` / ``challenger`` now."""
        parent = self.client.get_run(parent_run_id)
        children = self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.{PARENT_RUN_TAG} = '{parent_run_id}'",
            order_by=["start_time ASC"])
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

    def training_info(self, ref: ModelVersionRef) -> dict[str, Any]:
        """What the forecast report says about a registered version, read back from the
        runs that made it: the model run's scores, the parent run's data (hash, date range,
        series and row counts, when), its leaderboard, the gate's decision and scores, and
        the model's per-series holdout metrics (None where an older run lacks them)."""
        run = self.client.get_run(ref.run_id) if ref.run_id else None
        tags = dict(run.data.tags) if run else {}
        parent_id = tags.get(PARENT_RUN_TAG, "")
        parent = self.client.get_run(parent_id) if parent_id else None
        ptags = dict(parent.data.tags) if parent else {}
        pmetrics = dict(parent.data.metrics) if parent else {}
        mv = self.client.get_model_version(self.registry.name, ref.version)
        leaderboard, per_series = self._report_artifacts(ref.run_id, parent_id)
        return {
            "model_name": run.info.run_name if run else "",
            "model_type": tags.get(tag.MODEL_TYPE, ""),
            "version": ref.version,
            "registered_model": ref.name,
            "run_id": ref.run_id,
            "parent_run_id": parent_id,
            "trained_at": _when(parent.info.start_time if parent else None),
            "registered_at": _when(mv.creation_timestamp),
            "metrics": dict(run.data.metrics) if run else {},
            "data": {"sha256": ptags.get(tag.DATA_SHA256, ""),
                     "source": ptags.get(tag.DATA_PATH, ""),
                     "start": ptags.get(tag.DATA_START, ""),
                     "end": ptags.get(tag.DATA_END, ""),
                     "n_series": pmetrics.get("data_series"),
                     "n_rows": pmetrics.get("data_rows")},
            "gate": {k.removeprefix(tag.PREFIX): v for k, v in (mv.tags or {}).items()},
            "leaderboard": leaderboard,
            "per_series": per_series,
            "tracking_uri": self.store.uri,
        }
