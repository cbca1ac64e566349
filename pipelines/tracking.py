"""Everything MLflow: the store, runs, the pyfunc model, the registry and its aliases.

The only module of deepcast that imports ``mlflow``. The store is ``MLFLOW_TRACKING_URI``
when set, else a SQLite store ``./mlruns/mlflow.db`` with artifacts under
``./mlruns/artifacts`` (the plain ``./mlruns`` file store is deprecated in MLflow 3).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from deepcast.features.errors import ConfigError, RunFailed

CHAMPION, CHALLENGER = "champion", "challenger"
NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}
MODEL_ARTIFACT = "model"
BUNDLE_KEY = "bundle"


# Logged as "models from code": MLflow stores this script with the model and runs it at
# load time, so no pickled Python object is ever deserialised.
PYFUNC_ENTRY = """\
from mlflow.models import set_model

from deepcast.pipelines.tracking import DeepcastModel

set_model(DeepcastModel())
"""


def _quiet_env() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # a tracking server that is down fails a run in tens of seconds, not minutes
    # (MLflow's defaults: 7 retries with backoff factor 2, 120 s timeout)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def default_store(root: str | Path | None = None) -> tuple[str, Path]:
    """(tracking URI, artifact root) of the local default store under ``root/mlruns``."""
    base = Path(root or Path.cwd()).resolve() / "mlruns"
    return f"sqlite:///{base / 'mlflow.db'}", base / "artifacts"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_store()[0]


def store_failed(uri: str, exc: BaseException) -> RunFailed:
    """The error to show when the tracking store itself fails (down, unreachable)."""
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return RunFailed(f"tracking store {uri} failed: {text[0] if text else repr(exc)}",
                     hint="check that the MLflow server is running and reachable "
                     "(MLFLOW_TRACKING_URI), then rerun; no alias was moved")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out.update(_flatten(x, f"{key}.{i}."))
        else:
            out[key] = str(v)[:6000]
    return out


def _requirements() -> list[str]:
    reqs = []
    for dist in ("deepcast", "mlflow", "keras", "tensorflow-cpu", "tensorflow", "pandas",
                 "numpy", "pyarrow", "great-expectations", "prefect", "pydantic", "pyyaml"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


class DeepcastModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: ``predict(history_df)`` returns the forecast frame.

    The artifact ``bundle`` holds the ``.keras`` model (loaded with ``safe_mode=True``),
    the fitted scalers and the window/column spec.
    """

    def load_context(self, context) -> None:
        from deepcast.forecasting.predictor import Predictor

        self.predictor = Predictor.load(context.artifacts[BUNDLE_KEY])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        out = self.predictor.predict(pd.DataFrame(model_input))
        out["model_name"] = self.predictor.name
        return out


@dataclass(frozen=True)
class ModelVersionRef:
    """A registered model version, as resolved from an alias or number."""

    name: str
    version: str
    run_id: str
    source: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class Tracker:
    """MLflow runs and registry for one pipeline (experiment = registered model = name)."""

    def __init__(self, experiment: str, uri: str | None = None) -> None:
        import mlflow
        from mlflow import MlflowClient

        _quiet_env()
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.uri = uri or tracking_uri()
        self.experiment = experiment
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self._experiment_id: str | None = None

    # ---- runs ---------------------------------------------------------------------------
    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self._ensure_experiment()
        return self._experiment_id

    def _ensure_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        try:
            exp = self.client.get_experiment_by_name(self.experiment)
            if exp is not None:
                return exp.experiment_id
            location = None
            if self.uri == default_store()[0] or self.uri.startswith("sqlite:"):
                root = Path(self.uri.removeprefix("sqlite:///")).parent / "artifacts"
                location = (root / self.experiment).as_uri()
            return self.client.create_experiment(self.experiment, artifact_location=location)
        except MlflowException as exc:
            exp = self.client.get_experiment_by_name(self.experiment)  # lost a creation race
            if exp is not None:
                return exp.experiment_id
            raise self.store_failed(exc) from None

    def store_failed(self, exc: BaseException) -> RunFailed:
        return store_failed(self.uri, exc)

    @contextmanager
    def run(self, name: str, nested: bool = False, tags: dict[str, str] | None = None,
            parent_run_id: str | None = None) -> Iterator[str]:
        """Start (or nest) a run; it ends FAILED if the block raises, FINISHED otherwise.
        ``parent_run_id`` nests it under a run active in another process (a Dask worker
        logging one model of the parent's ``train``). Runs are tagged with this process
        (host, pid), so a parent run first closes the runs that killed processes left
        RUNNING (:meth:`end_orphans`)."""
        import mlflow

        from deepcast.pipelines.locks import HOST

        if not nested:
            self.end_orphans()
        tags = {**(tags or {}), "deepcast.host": HOST, "deepcast.pid": str(os.getpid())}
        with mlflow.start_run(run_name=name, experiment_id=self.experiment_id, nested=nested,
                              tags=tags, parent_run_id=parent_run_id or None) as run:
            yield run.info.run_id

    def end_orphans(self) -> list[str]:
        """Mark KILLED the runs of this experiment left RUNNING by a process of this host
        that no longer exists (SIGKILL, OOM, power loss); return their ids."""
        from deepcast.pipelines.locks import HOST, process_alive

        runs = self.client.search_runs([self.experiment_id],
                                       filter_string="attributes.status = 'RUNNING'")
        ended = []
        for r in runs:
            pid = r.data.tags.get("deepcast.pid", "")
            if r.data.tags.get("deepcast.host") != HOST or not pid.isdigit() \
                    or process_alive(int(pid)):
                continue
            self.client.set_tag(r.info.run_id, "deepcast.end_reason",
                                f"process {pid} on {HOST} ended without closing the run "
                                "(killed); closed by the next run")
            self.client.set_terminated(r.info.run_id, "KILLED")
            ended.append(r.info.run_id)
        if ended:
            logging.getLogger("deepcast").warning(
                "marked %d run(s) left RUNNING by a killed process as KILLED", len(ended))
        return ended

    def active_run_id(self) -> str:
        """Id of the run started by :meth:`run` in this thread ('' if none)."""
        import mlflow

        run = mlflow.active_run()
        return run.info.run_id if run else ""

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        flat = _flatten(params)
        items = list(flat.items())
        for i in range(0, len(items), 90):
            mlflow.log_params(dict(items[i : i + 90]))

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        import math

        import mlflow

        clean = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
        if clean:
            mlflow.log_metrics(clean, step=step)

    def set_tags(self, tags: dict[str, Any], run_id: str | None = None) -> None:
        import mlflow

        if run_id is None:
            mlflow.set_tags({k: str(v) for k, v in tags.items()})
        else:
            for k, v in tags.items():
                self.client.set_tag(run_id, k, str(v))

    def log_dict(self, obj: Any, artifact_file: str, run_id: str | None = None) -> None:
        import mlflow

        if run_id is None:
            mlflow.log_dict(obj, artifact_file)
        else:
            self.client.log_dict(run_id, obj, artifact_file)

    def load_dict(self, run_id: str, artifact_file: str) -> dict[str, Any] | None:
        """A JSON artifact of a run, or None when the run has no such artifact."""
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact_file}")
        except (MlflowException, OSError):
            return None

    def run_url(self, run_id: str) -> str:
        """Where a run shows in the MLflow UI: on the tracking server, or on `deepcast ui`
        (http://127.0.0.1:5000) for a local store."""
        base = self.uri if self.uri.startswith(("http://", "https://")) \
            else "http://127.0.0.1:5000"
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def log_frame(self, df: pd.DataFrame, artifact_file: str) -> None:
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            df.to_csv(path, index=False)
            mlflow.log_artifact(str(path), str(Path(artifact_file).parent or ""))

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_dir)

    def log_files(self, files: dict[str, bytes], folder: str | None = None,
                  run_id: str | None = None) -> None:
        """Log ``name -> content`` (PNGs, say) under ``folder`` of the active run or
        ``run_id``, in one call."""
        import mlflow

        if not files:
            return
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            if run_id is None:
                mlflow.log_artifacts(tmp, folder)
            else:
                self.client.log_artifacts(run_id, tmp, folder)

    def log_predictor(self, predictor, example_history: pd.DataFrame) -> str:
        """Log a pyfunc model bundling ``predictor``; return its model URI."""
        import mlflow
        from mlflow.models import infer_signature

        example_out = predictor.predict(example_history)
        example_out["model_name"] = predictor.name
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            # hints about integer columns and the missing input_example (which crashes
            # log_model upstream, see STACK_NOTES): the signature below is explicit
            warnings.simplefilter("ignore", UserWarning)
            signature = infer_signature(example_history, example_out)
            bundle = predictor.save(Path(tmp) / "bundle")
            entry = Path(tmp) / "deepcast_model.py"
            entry.write_text(PYFUNC_ENTRY)
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(entry),
                artifacts={BUNDLE_KEY: str(bundle)},
                signature=signature,
                pip_requirements=_requirements(),
            )
        return info.model_uri

    def end_failed(self, run_id: str) -> None:
        """Mark a run FAILED (used when a later stage of the run fails)."""
        self.client.set_terminated(run_id, "FAILED")

    def recent_runs(self, metric: str, limit: int = 10) -> list[dict[str, Any]]:
        """Recent ``train`` runs (parents) with their best model, score and decision."""
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            return []
        runs = self.client.search_runs([exp.experiment_id], order_by=["start_time DESC"],
                                       max_results=max(limit * 20, 50))
        rows = []
        for r in runs:
            tags = r.data.tags
            if "mlflow.parentRunId" in tags:
                continue
            rows.append({
                "run_id": r.info.run_id,
                "kind": tags.get("deepcast.stage", "train"),
                "started": pd.Timestamp(r.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M"),
                "status": r.info.status,
                "best_model": tags.get("deepcast.best_model", ""),
                f"best_{metric}": r.data.metrics.get(f"best_holdout_{metric}"),
                f"seasonal_naive_{metric}": r.data.metrics.get(f"seasonal_naive_holdout_{metric}"),
                "version": tags.get("deepcast.promotion.candidate_version", ""),
                "decision": tags.get("deepcast.promotion.decision", ""),
            })
            if len(rows) >= limit:
                break
        return rows

    def model_runs(self, parent_run_id: str, metric: str) -> list[dict[str, Any]]:
        """The model runs of one parent run with their scores (as the MLflow UI shows
        them), marking the models that are ``champion`` / ``challenger`` now."""
        parent = self.client.get_run(parent_run_id)
        children = self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            order_by=["start_time ASC"])
        by_run = {}
        for alias, version in self.aliases().items():
            try:
                mv = self.client.get_model_version(self.experiment, version)
            except Exception:  # noqa: BLE001 (a deleted version: no mark)
                continue
            by_run.setdefault(mv.run_id, []).append(f"{alias} (v{version})")
        rows = []
        for r in children:
            m = r.data.metrics
            prefix = "backtest_" if r.data.tags.get("deepcast.stage") == "backtest" \
                else "holdout_"
            rows.append({"model": r.info.run_name,
                         "type": r.data.tags.get("deepcast.model_type", ""),
                         **{k: m.get(prefix + k) for k in ("mae", "rmse", "smape", "mase")},
                         f"skill_{metric}": m.get(f"skill_{metric}",
                                                  m.get(f"backtest_skill_{metric}")),
                         "registry": ", ".join(by_run.get(r.info.run_id, [])),
                         "run_id": r.info.run_id})
        return rows

    def training_info(self, ref: ModelVersionRef) -> dict[str, Any]:
        """What the forecast report says about a registered version, read back from the
        runs that made it: the model run's scores, the parent run's data (hash, date range,
        series and row counts, when), its leaderboard, the gate's decision and scores, and
        the model's per-series holdout metrics (None where an older run lacks them)."""
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        def when(ms: int | None) -> str:
            return "" if not ms else pd.Timestamp(ms, unit="ms", tz="UTC").strftime(
                "%Y-%m-%d %H:%M UTC")

        run = self.client.get_run(ref.run_id) if ref.run_id else None
        tags = dict(run.data.tags) if run else {}
        parent_id = tags.get("mlflow.parentRunId", "")
        parent = self.client.get_run(parent_id) if parent_id else None
        ptags = dict(parent.data.tags) if parent else {}
        pmetrics = dict(parent.data.metrics) if parent else {}
        mv = self.client.get_model_version(self.experiment, ref.version)
        leaderboard, per_series = None, None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                if parent_id:
                    path = download_artifacts(run_id=parent_id, artifact_path="leaderboard.json",
                                              dst_path=tmp)
                    leaderboard = json.loads(Path(path).read_text())
                if ref.run_id:
                    path = download_artifacts(run_id=ref.run_id, dst_path=tmp,
                                              artifact_path="holdout/per_series_metrics.csv")
                    per_series = pd.read_csv(path, dtype={"unique_id": str})
            except (MlflowException, OSError) as exc:
                logging.getLogger("deepcast").debug("report: artifact missing: %s", exc)
        return {
            "model_name": run.info.run_name if run else "",
            "model_type": tags.get("deepcast.model_type", ""),
            "version": ref.version,
            "registered_model": ref.name,
            "run_id": ref.run_id,
            "parent_run_id": parent_id,
            "trained_at": when(parent.info.start_time if parent else None),
            "registered_at": when(mv.creation_timestamp),
            "metrics": dict(run.data.metrics) if run else {},
            "data": {"sha256": ptags.get("deepcast.data_sha256", ""),
                     "source": ptags.get("deepcast.data_path", ""),
                     "start": ptags.get("deepcast.data_start", ""),
                     "end": ptags.get("deepcast.data_end", ""),
                     "n_series": pmetrics.get("data_series"),
                     "n_rows": pmetrics.get("data_rows")},
            "gate": {k.removeprefix("deepcast."): v for k, v in (mv.tags or {}).items()},
            "leaderboard": leaderboard,
            "per_series": per_series,
            "tracking_uri": self.uri,
        }

    # ---- registry -------------------------------------------------------------------------
    def resolve(self, ref: str) -> ModelVersionRef:
        """A version from an alias (``champion``) or a number; ConfigError if none."""
        from mlflow.exceptions import MlflowException

        try:
            if ref.isdigit():
                mv = self.client.get_model_version(self.experiment, ref)
            else:
                mv = self.client.get_model_version_by_alias(self.experiment, ref)
        except MlflowException as exc:
            if exc.error_code not in NOT_FOUND:
                raise self.store_failed(exc) from None
            known = self.aliases()
            raise ConfigError(
                f"registered model {self.experiment!r} has no version {ref!r} "
                f"({exc.error_code}); aliases now: {known or 'none'}",
                hint="train first (deepcast train), or pick an existing alias/version",
            ) from None
        return ModelVersionRef(mv.name, str(mv.version), mv.run_id or "", mv.source or "")

    def aliases(self) -> dict[str, str]:
        """alias -> version of the registered model (empty if it does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            rm = self.client.get_registered_model(self.experiment)
        except MlflowException as exc:  # only "no such model" means no alias
            if exc.error_code not in NOT_FOUND:
                raise self.store_failed(exc) from None
            return {}
        return {a: str(v) for a, v in (rm.aliases or {}).items()}

    def load_pyfunc(self, ref: ModelVersionRef):
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(ref.uri)

    def load_predictor(self, model_uri: str):
        """The fitted :class:`~forecasting.predictor.Predictor` behind a logged model URI."""
        return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().predictor

    def register(self, model_uri: str, run_id: str, tags: dict[str, Any]) -> ModelVersionRef:
        """Create a new version of the pipeline's registered model."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(
                self.experiment, description=f"deepcast pipeline {self.experiment!r}")
        except MlflowException as exc:
            if "ALREADY_EXISTS" not in str(exc.error_code):
                raise
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") \
            else None
        mv = self.client.create_model_version(
            self.experiment, source=model_uri, run_id=run_id or None,
            tags={k: str(v) for k, v in tags.items()}, model_id=model_id)
        return ModelVersionRef(mv.name, str(mv.version), run_id, mv.source or model_uri)

    @contextmanager
    def promotion_lock(self) -> Iterator[None]:
        """Serialise promotion decisions of this registered model (same store) across the
        processes of this host, so two runs cannot both decide against a stale champion."""
        from deepcast.pipelines.locks import exclusive

        with exclusive(self.uri, self.experiment):
            yield

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.experiment, alias, version)

    def delete_alias(self, alias: str) -> None:
        self.client.delete_registered_model_alias(self.experiment, alias)

    def versions(self) -> list[Any]:
        """Every version of the pipeline's registered model (MLflow ``ModelVersion``s)."""
        return list(self.client.search_model_versions(f"name='{self.experiment}'"))

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.experiment, version).tags or {})

    def set_version_tags(self, version: str, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_model_version_tag(self.experiment, version, k, str(v))


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
