"""The run writer: runs, params, metrics, tags, artifacts and the logged model of a pipeline.

:class:`Tracker` is what the stages receive. It is the pipeline's :class:`Store` and writes
into the active run (or a given one); ``tracker.registry`` holds the registered model and
its aliases, ``tracker.history`` reads runs and versions back.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.pipelines.tracking import tags as tag
from deepcast.pipelines.tracking.datasets import RunDataset
from deepcast.pipelines.tracking.history import History
from deepcast.pipelines.tracking.model import (
    BUNDLE_KEY,
    ENTRY_FILE,
    MODEL_ARTIFACT,
    PYFUNC_ENTRY,
    forecast_frame,
)
from deepcast.pipelines.tracking.registry import Registry
from deepcast.pipelines.tracking.store import Store, already_exists


@dataclass(frozen=True)
class LoggedModelRef:
    """A model logged in a run: its URI (``models:/m-...``) and LoggedModel id."""

    uri: str
    model_id: str


PARAMS_PER_CALL = 90  # under MLflow's 100 params per log_params call


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


def _finite(values: dict[str, float]) -> dict[str, float]:
    """The finite ``values`` as floats (MLflow stores no None, NaN or inf usefully)."""
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def _requirements() -> list[str]:
    reqs = []
    for dist in ("deepcast", "mlflow", "keras", "tensorflow-cpu", "tensorflow", "pandas",
                 "numpy", "pyarrow", "great-expectations", "prefect", "pydantic", "pyyaml"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


class Tracker(Store):
    """MLflow runs for one pipeline (experiment = registered model = name), with its
    :class:`Registry` (``.registry``) and :class:`History` (``.history``)."""

    def __init__(self, experiment: str, uri: str | None = None) -> None:
        super().__init__(experiment, uri)
        self.registry = Registry(self)
        self.history = History(self, self.registry)

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
        tags = {**(tags or {}), tag.HOST: HOST, tag.PID: str(os.getpid())}
        with mlflow.start_run(run_name=name, experiment_id=self.experiment_id, nested=nested,
                              tags=tags, parent_run_id=parent_run_id or None) as run:
            yield run.info.run_id

    def active_run_id(self) -> str:
        """Id of the run started by :meth:`run` in this thread ('' if none)."""
        import mlflow

        run = mlflow.active_run()
        return run.info.run_id if run else ""

    def end_failed(self, run_id: str) -> None:
        """Mark a run FAILED (used when a later stage of the run fails)."""
        self.client.set_terminated(run_id, "FAILED")

    def log_params(self, params: dict[str, Any]) -> None:
        """Log nested ``params`` flattened to dotted keys (``features.lookback``)."""
        import mlflow

        items = list(_flatten(params).items())
        for i in range(0, len(items), PARAMS_PER_CALL):
            mlflow.log_params(dict(items[i : i + PARAMS_PER_CALL]))

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        """Log the finite ``values`` in one call (None, NaN and inf are left out)."""
        import mlflow

        clean = _finite(values)
        if clean:
            mlflow.log_metrics(clean, step=step)

    def set_tags(self, tags: dict[str, Any], run_id: str | None = None) -> None:
        """Set tags (values as strings) on the active run or on ``run_id``."""
        import mlflow

        if run_id is None:
            mlflow.set_tags({k: str(v) for k, v in tags.items()})
        else:
            for k, v in tags.items():
                self.client.set_tag(run_id, k, str(v))

    def log_inputs(self, datasets: Sequence[RunDataset], run_id: str | None = None) -> None:
        """Link ``datasets`` (metadata only) to the active run or ``run_id``, each with its
        context (``training``, ``holdout``, ``backtest``): the UI's Dataset column."""
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        inputs = [DatasetInput(d.to_mlflow()._to_mlflow_entity(),
                               tags=[InputTag(MLFLOW_DATASET_CONTEXT, d.context)])
                  for d in datasets]
        if not inputs:
            return
        run_id = run_id or self.active_run_id()
        _once_more_if_raced(lambda: self.client.log_inputs(run_id, datasets=inputs))

    def log_model_metrics(self, model_id: str, values: dict[str, float],
                          dataset: RunDataset | None = None) -> None:
        """Log the finite ``values`` on the active run, attached to its logged model (the
        UI's Models tab and the registered version show them) and to the ``dataset`` they
        were measured on."""
        import mlflow

        clean = _finite(values)
        if clean:  # with a dataset, MLflow links it to the run (inserts it) first
            _once_more_if_raced(lambda: mlflow.log_metrics(
                clean, model_id=model_id, dataset=dataset.to_mlflow() if dataset else None))

    def set_description(self, markdown: str, run_id: str | None = None) -> None:
        """The run's description in the MLflow UI (markdown)."""
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

        self.set_tags({MLFLOW_RUN_NOTE: markdown}, run_id)

    def log_dict(self, obj: Any, artifact_file: str, run_id: str | None = None) -> None:
        """Log ``obj`` as a JSON (or YAML, by extension) artifact."""
        import mlflow

        if run_id is None:
            mlflow.log_dict(obj, artifact_file)
        else:
            self.client.log_dict(run_id, obj, artifact_file)

    def log_frame(self, df: pd.DataFrame, artifact_file: str) -> None:
        """Log ``df`` as a CSV artifact of the active run."""
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            df.to_csv(path, index=False)
            mlflow.log_artifact(str(path), str(Path(artifact_file).parent or ""))

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None:
        """Log one local file under ``artifact_dir`` of the active run."""
        import mlflow

        mlflow.log_artifact(str(path), artifact_dir)

    def log_folder(self, path: str | Path, artifact_dir: str) -> None:
        """Log a local folder (and what is below it) as ``artifact_dir`` of the active
        run."""
        import mlflow

        mlflow.log_artifacts(str(path), artifact_dir)

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

    def log_predictor(self, predictor: Any, example_history: pd.DataFrame,
                      params: dict[str, Any] | None = None) -> LoggedModelRef:
        """Log a pyfunc model bundling ``predictor`` (as code, never pickled), with
        ``params`` (flattened) on the logged model; its URI and id."""
        import mlflow.pyfunc
        from mlflow.models import infer_signature

        example_out = forecast_frame(predictor, example_history)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            # hints about integer columns and the missing input_example (which crashes
            # log_model upstream, see STACK_NOTES): the signature below is explicit
            warnings.simplefilter("ignore", UserWarning)
            signature = infer_signature(example_history, example_out)
            bundle = predictor.save(Path(tmp) / BUNDLE_KEY)
            entry = Path(tmp) / ENTRY_FILE
            entry.write_text(PYFUNC_ENTRY)
            info = mlflow.pyfunc.log_model(
                # named after the model in the UI's Models tab ('.' is not allowed there)
                name=(predictor.name or MODEL_ARTIFACT).replace(".", "_"),
                python_model=str(entry),
                artifacts={BUNDLE_KEY: str(bundle)},
                signature=signature,
                pip_requirements=_requirements(),
                params=_flatten(params or {}),
            )
        return LoggedModelRef(info.model_uri, info.model_id or "")


def _once_more_if_raced(call: Callable[[], Any]) -> Any:
    """``call()``, and once more when it failed because what it creates (a dataset row)
    exists already. MLflow looks a dataset up, then inserts it: another run of the same
    data (two trains of one pipeline at once) can insert it in between, and the SQL store
    lets the unique-key violation through; on the second try MLflow finds that row and
    links it. Nothing else is written before the insert, so nothing is written twice."""
    try:
        return call()
    except Exception as exc:  # MlflowException, or the SQL store's IntegrityError
        if not already_exists(exc):
            raise
        return call()
