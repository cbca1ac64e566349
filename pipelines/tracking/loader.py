"""Verified loading of deepcast models: check what a model is before anything of it runs.

``mlflow.pyfunc.load_model`` runs whatever the model carries: a pickled ``python_model``
(cloudpickle executes code while unpickling, then ``load_context`` runs) or the stored
models-from-code script. Anyone who can register a version and move an alias could make
``deepcast forecast`` run their code. So deepcast reads only the version's ``MLmodel`` file
first and refuses (:class:`ConfigError`, exit 2) unless it is deepcast's own code model: a
``python_function`` flavour loaded by MLflow's pyfunc model loader, no pickle, no code paths,
a code file whose text is exactly one of deepcast's entry scripts, and the bundle artifact.
It then builds the :class:`~deepcast.forecasting.predictor.Predictor` from the bundle itself
(JSON files and a ``.keras`` file read with ``safe_mode=True``): the stored script is never
executed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import yaml

from deepcast.features.errors import ConfigError
from deepcast.pipelines.tracking.model import BUNDLE_KEY, KNOWN_ENTRIES, forecast_frame
from deepcast.pipelines.tracking.store import NOT_FOUND, Store

MLMODEL_FILE = "MLmodel"
# the loader MLflow 3 writes for models from code, and the one MLflow 2 wrote
CODE_MODEL_LOADERS = {"mlflow.pyfunc.loaders.code_model", "mlflow.pyfunc.model"}
REFUSE_HINT = ("register models with `deepcast train` only; point the alias back at a "
               "deepcast version (`deepcast promote PIPELINE` lists the history)")


@dataclass(frozen=True)
class LoadedModel:
    """A deepcast model built from its bundle (its stored script never ran):
    ``predict(history_df)`` returns the forecast frame, like the logged pyfunc's."""

    uri: str
    predictor: Any  # deepcast.forecasting.predictor.Predictor

    def predict(self, history_df: pd.DataFrame) -> pd.DataFrame:
        return forecast_frame(self.predictor, history_df)


@dataclass(frozen=True)
class CodeModel:
    """What a verified ``MLmodel`` says: where the bundle lies under the model's root."""

    root: str
    bundle_path: str


def _refuse(label: str, why: str) -> ConfigError:
    return ConfigError(f"{label}: not a deepcast model: {why}; it was not loaded",
                       hint=REFUSE_HINT)


def model_root(store: Store, uri: str) -> str:
    """The artifact location of a model: ``models:/NAME/VERSION`` (a registered version),
    ``models:/m-<id>`` (a logged model), or any other artifact URI as it is."""
    from mlflow.exceptions import MlflowException

    rest = uri.removeprefix("models:/")
    try:
        if rest.startswith("m-") and "/" not in rest:
            return store.client.get_logged_model(rest).artifact_location
        if rest != uri and rest.count("/") == 1:
            name, version = rest.split("/")
            return store.client.get_model_version_download_uri(name, version)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:
            raise store.store_failed(exc) from None
        raise ConfigError(f"model {uri} not found in {store.uri} ({exc.error_code})",
                          hint="train first (deepcast train)") from None
    return uri


def _download(store: Store, root: str, path: str, label: str, dst: str) -> Path:
    """One file or folder of the model (``path`` under ``root``), downloaded to ``dst``."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{root}/{path}",
                                                        dst_path=dst))
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:
            raise store.store_failed(exc) from None
        raise _refuse(label, f"it has no {path}") from None
    except OSError as exc:
        raise _refuse(label, f"its {path} cannot be read ({exc})") from None


def _relative(path: Any) -> str | None:
    """``path`` as a plain relative POSIX path inside the model, or None."""
    if not isinstance(path, str) or not path:
        return None
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or ":" in path:
        return None
    return str(p)


def check_mlmodel(conf: Any, label: str) -> tuple[str, str]:
    """(entry script file, bundle path) of an ``MLmodel`` that describes deepcast's code
    model; :class:`ConfigError` naming ``label`` and the reason otherwise."""
    flavours = conf.get("flavors") if isinstance(conf, dict) else None
    pyfunc = (flavours or {}).get("python_function")
    if not isinstance(pyfunc, dict):
        raise _refuse(label, "it has no python_function flavour")
    if "python_model" in pyfunc:
        raise _refuse(label, "it holds a pickled python_model "
                      f"({pyfunc.get('python_model')!s})")
    if pyfunc.get("loader_module") not in CODE_MODEL_LOADERS:
        raise _refuse(label, f"its loader module is {pyfunc.get('loader_module')!r}, not "
                      "MLflow's pyfunc model loader")
    if pyfunc.get("code"):
        raise _refuse(label, "it ships code paths")
    code = pyfunc.get("model_code_path")
    entry = PurePosixPath(str(code).replace("\\", "/")).name if code else ""
    if not entry or entry == MLMODEL_FILE:
        raise _refuse(label, "it has no models-from-code script")
    artifact = (pyfunc.get("artifacts") or {}).get(BUNDLE_KEY)
    bundle = _relative(artifact.get("path")) if isinstance(artifact, dict) else None
    if bundle is None:
        raise _refuse(label, f"it has no {BUNDLE_KEY!r} artifact")
    return entry, bundle


def verify(store: Store, uri: str, label: str) -> CodeModel:
    """Check the model at ``uri`` (reading only its ``MLmodel`` and entry script) and
    say where its bundle is; :class:`ConfigError` when it is not deepcast's."""
    root = model_root(store, uri).rstrip("/")
    with tempfile.TemporaryDirectory() as tmp:
        mlmodel = _download(store, root, MLMODEL_FILE, label, tmp)
        try:
            conf = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise _refuse(label, f"its MLmodel is not readable YAML ({exc})") from None
        entry, bundle = check_mlmodel(conf, label)
        script = _download(store, root, entry, label, tmp)
        try:
            text = script.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
        if text not in KNOWN_ENTRIES:
            raise _refuse(label, f"its code file {entry} is not deepcast's entry script")
    return CodeModel(root, bundle)


def load_verified(store: Store, uri: str, label: str) -> LoadedModel:
    """The model at ``uri``, verified (:func:`verify`), built from its bundle."""
    from deepcast.forecasting.predictor import Predictor

    model = verify(store, uri, label)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _download(store, model.root, model.bundle_path, label, tmp)
        if not bundle.is_dir():
            raise _refuse(label, f"its {model.bundle_path} is not a bundle folder")
        return LoadedModel(uri, Predictor.load(bundle))
