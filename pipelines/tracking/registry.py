"""The registered model of a pipeline: versions, the ``champion`` / ``challenger`` aliases,
their tags, and verified loading (:mod:`.loader`) of what they point at."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from deepcast.features.errors import ConfigError
from deepcast.pipelines.tracking.loader import LoadedModel, load_verified, verify
from deepcast.pipelines.tracking.store import NOT_FOUND, Store, already_exists

CHAMPION, CHALLENGER = "champion", "challenger"


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

    @property
    def label(self) -> str:
        """How errors name it: ``registered model 'NAME' version N``."""
        return f"registered model {self.name!r} version {self.version}"


class Registry:
    """The registered model named like the pipeline's experiment, on ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.name = store.experiment
        self.client = store.client

    def resolve(self, ref: str) -> ModelVersionRef:
        """A version from an alias (``champion``) or a number; ConfigError if none."""
        from mlflow.exceptions import MlflowException

        try:
            if ref.isdigit():
                mv = self.client.get_model_version(self.name, ref)
            else:
                mv = self.client.get_model_version_by_alias(self.name, ref)
        except MlflowException as exc:
            if exc.error_code not in NOT_FOUND:
                raise self.store.store_failed(exc) from None
            known = self.aliases()
            hint = "train first (deepcast train), or pick an existing alias/version"
            if ref == "champion" and "challenger" in known:  # trained, not promoted
                hint = (f"no model has passed the promotion gate yet: version "
                        f"{known['challenger']} is the challenger, kept back by the gate "
                        "(the train output and the version's tags say why). Forecast with "
                        "it anyway with --model challenger, or train better models")
            raise ConfigError(
                f"registered model {self.name!r} has no version {ref!r} "
                f"({exc.error_code}); aliases now: {known or 'none'}", hint=hint,
            ) from None
        return ModelVersionRef(mv.name, str(mv.version), mv.run_id or "", mv.source or "")

    def aliases(self) -> dict[str, str]:
        """alias -> version of the registered model (empty if it does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            rm = self.client.get_registered_model(self.name)
        except MlflowException as exc:  # only "no such model" means no alias
            if exc.error_code not in NOT_FOUND:
                raise self.store.store_failed(exc) from None
            return {}
        return {a: str(v) for a, v in (rm.aliases or {}).items()}

    # ---- loading: verified, never the stored script ------------------------------------
    def verify(self, ref: ModelVersionRef) -> None:
        """Refuse (ConfigError, exit 2) a version that is not deepcast's own code model;
        reads its ``MLmodel`` and entry script only, runs nothing."""
        verify(self.store, ref.uri, ref.label)

    def load(self, ref: ModelVersionRef) -> LoadedModel:
        """The version's model, verified and built from its bundle (see :mod:`.loader`)."""
        return load_verified(self.store, ref.uri, ref.label)

    def load_logged(self, model_uri: str) -> LoadedModel:
        """A model logged by a run (``models:/m-<id>``, not registered), verified likewise:
        the model of a fit that ran in a worker process."""
        return load_verified(self.store, model_uri, f"logged model {model_uri}")

    # ---- versions and aliases ------------------------------------------------------------
    def register(self, model_uri: str, run_id: str, tags: dict[str, Any]) -> ModelVersionRef:
        """Create a new version of the pipeline's registered model."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(
                self.name, description=f"deepcast pipeline {self.name!r}")
        except MlflowException as exc:
            if not already_exists(exc):
                raise
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") \
            else None
        mv = self.client.create_model_version(
            self.name, source=model_uri, run_id=run_id or None,
            tags={k: str(v) for k, v in tags.items()}, model_id=model_id)
        return ModelVersionRef(mv.name, str(mv.version), run_id, mv.source or model_uri)

    @contextmanager
    def promotion_lock(self) -> Iterator[None]:
        """Serialise promotion decisions of this registered model (same store) across the
        processes of this host, so two runs cannot both decide against a stale champion."""
        from deepcast.pipelines.locks import exclusive

        with exclusive(self.store.uri, self.name):
            yield

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        self.client.set_registered_model_alias(self.name, alias, version)

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias`` (its version stays)."""
        self.client.delete_registered_model_alias(self.name, alias)

    def versions(self) -> list[Any]:
        """Every version of the pipeline's registered model (MLflow ``ModelVersion``s)."""
        return list(self.client.search_model_versions(f"name='{self.name}'"))

    def version_tags(self, version: str) -> dict[str, str]:
        """The tags of one version."""
        return dict(self.client.get_model_version(self.name, version).tags or {})

    def set_version_tags(self, version: str, tags: dict[str, Any]) -> None:
        """Set tags on one version (values as strings)."""
        for k, v in tags.items():
            self.client.set_model_version_tag(self.name, version, k, str(v))
