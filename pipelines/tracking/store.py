"""The MLflow store of a pipeline: where it is, its client and experiment, and the runs that
killed processes left open.

The store is ``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``./mlruns/mlflow.db``
with artifacts under ``./mlruns/artifacts`` (the plain ``./mlruns`` file store is
deprecated in MLflow 3). The writer, the registry and the history tables share one
:class:`Store`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from deepcast.features.errors import RunFailed
from deepcast.pipelines.tracking import tags as tag

# MLflow's kind of an experiment (what the UI's kind selector and MLflow's own inference
# read): untagged, MLflow guessed "GenAI" for deepcast's experiments (traces, token use).
EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"  # the UI's "Machine learning"
UI_VIEW = "workflowType=machine_learning"  # the UI's "Model training" view, in a link

# the error codes by which MLflow says "no such model / version / alias / file"
NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


def _quiet_env() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # a tracking server that is down fails a run in tens of seconds, not minutes
    # (MLflow's defaults: 7 retries with backoff factor 2, 120 s timeout)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def experiment_url(base: str, experiment_id: str, page: str = "") -> str:
    """An experiment's page (or ``page`` under it) in the MLflow UI at ``base``, in the UI's
    model-training view: MLflow 3.17's UI opens every experiment in its GenAI view in a
    browser that has not chosen a view, whatever the experiment's kind tag says."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}{page}?{UI_VIEW}"


def experiment_links(uri: str, base: str) -> list[tuple[str, str]]:
    """(name, UI link) of every active experiment in the store at ``uri``, newest first."""
    from mlflow import MlflowClient

    _quiet_env()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return [(e.name, experiment_url(base, e.experiment_id)) for e in
            client.search_experiments(order_by=["creation_time DESC"])
            if e.name != "Default"]


def default_store(root: str | Path | None = None) -> tuple[str, Path]:
    """(tracking URI, artifact root) of the local default store under ``root/mlruns``."""
    base = Path(root or Path.cwd()).resolve() / "mlruns"
    return f"sqlite:///{base / 'mlflow.db'}", base / "artifacts"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_store()[0]


def already_exists(exc: BaseException) -> bool:
    """An MLflow error saying that what was being created exists already (another process
    created it first), or the database's own unique-key violation, which a local SQL store
    lets through when the other insert lands between MLflow's lookup and its own: bare,
    or wrapped in an MlflowException (BAD_REQUEST) by MLflow's managed session, so the
    whole cause chain is searched."""
    from sqlalchemy.exc import IntegrityError  # MLflow's SQL store is built on it

    seen: BaseException | None = exc
    for _ in range(8):  # a short chain; never loops on a cycle of causes
        if seen is None:
            break
        if "ALREADY_EXISTS" in str(getattr(seen, "error_code", "")):
            return True
        text = str(seen)
        if isinstance(seen, IntegrityError) and (
                "UNIQUE constraint failed" in text or "duplicate key value" in text):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def store_failed(uri: str, exc: BaseException) -> RunFailed:
    """The error to show when the tracking store itself fails (down, unreachable)."""
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    if uri.startswith(("http://", "https://")):
        hint = ("check that the MLflow server is running and reachable "
                "(MLFLOW_TRACKING_URI), then rerun; no alias was moved")
    elif uri.startswith("sqlite:"):
        hint = (f"the local store is the file {uri.removeprefix('sqlite:///')}: check that "
                "its folder exists and is writable, the disk is not full and no other "
                "program holds the database; then rerun (no alias was moved)")
    else:
        hint = ("check the database behind MLFLOW_TRACKING_URI (reachable, credentials, "
                "schema), then rerun; no alias was moved")
    return RunFailed(f"tracking store {uri} failed: {text[0] if text else repr(exc)}",
                     hint=hint)


class Store:
    """One pipeline's place in MLflow: the store at ``uri`` and the experiment (and
    registered model) named ``experiment``, created on first use."""

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

    @property
    def experiment_id(self) -> str:
        """The experiment's id; the experiment is created (next to a SQLite store's
        database for its artifacts) the first time it is asked for."""
        if self._experiment_id is None:
            self._experiment_id = self._ensure_experiment()
        return self._experiment_id

    def _ensure_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        try:
            exp = self.client.get_experiment_by_name(self.experiment)
            if exp is not None:
                self._mark_training(exp)
                return exp.experiment_id
            location = None
            if self.uri == default_store()[0] or self.uri.startswith("sqlite:"):
                root = Path(self.uri.removeprefix("sqlite:///")).parent / "artifacts"
                location = (root / self.experiment).as_uri()
            return self.client.create_experiment(self.experiment, artifact_location=location,
                                                 tags={EXPERIMENT_KIND: TRAINING_KIND})
        except MlflowException as exc:
            exp = self.client.get_experiment_by_name(self.experiment)  # lost a creation race
            if exp is not None:
                return exp.experiment_id
            raise self.store_failed(exc) from None

    def _mark_training(self, exp) -> None:
        """Tag an experiment made elsewhere (before this tag existed, or by hand) as model
        training, unless someone chose its kind: a kind the UI inferred is not a choice."""
        kind = exp.tags.get(EXPERIMENT_KIND, "")
        if not kind or kind.endswith("_inferred") or kind == "no_inferred_type":
            self.client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, TRAINING_KIND)

    def store_failed(self, exc: BaseException) -> RunFailed:
        """The error to show when this store fails (see :func:`store_failed`)."""
        return store_failed(self.uri, exc)

    def run_url(self, run_id: str) -> str:
        """Where a run shows in the MLflow UI: on the tracking server, or on `deepcast ui`
        (http://127.0.0.1:5000) for a local store."""
        base = self.uri if self.uri.startswith(("http://", "https://")) \
            else "http://127.0.0.1:5000"
        return experiment_url(base, self.experiment_id, f"/runs/{run_id}")

    def end_orphans(self) -> list[str]:
        """Mark KILLED the runs of this experiment left RUNNING by a process of this host
        that no longer exists (SIGKILL, OOM, power loss); return their ids."""
        from deepcast.pipelines.locks import HOST, process_alive

        runs = self.client.search_runs([self.experiment_id],
                                       filter_string="attributes.status = 'RUNNING'")
        ended = []
        for r in runs:
            pid = r.data.tags.get(tag.PID, "")
            if r.data.tags.get(tag.HOST) != HOST or not pid.isdigit() \
                    or process_alive(int(pid)):
                continue
            self.client.set_tag(r.info.run_id, tag.END_REASON,
                                f"process {pid} on {HOST} ended without closing the run "
                                "(killed); closed by the next run")
            self.client.set_terminated(r.info.run_id, "KILLED")
            ended.append(r.info.run_id)
        if ended:
            logging.getLogger("deepcast").warning(
                "marked %d run(s) left RUNNING by a killed process as KILLED", len(ended))
        return ended
