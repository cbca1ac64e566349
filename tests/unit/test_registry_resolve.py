"""A missing alias says what to do: after a first train whose model the gate kept back,
``champion`` is missing but ``challenger`` exists, and the hint names it (a plain "train
first" told a user who had just trained nothing useful). A real SQLite MLflow store."""

import pytest
from mlflow import MlflowClient

from deepcast.features.errors import ConfigError
from deepcast.pipelines.tracking.registry import Registry
from deepcast.pipelines.tracking.store import Store


@pytest.fixture
def registry(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("shop")
    source = tmp_path / "model"
    source.mkdir()
    version = client.create_model_version("shop", str(source)).version
    return Registry(Store("shop", uri)), client, version


def test_a_challenger_without_champion_is_named_in_the_hint(registry):
    reg, client, version = registry
    client.set_registered_model_alias("shop", "challenger", version)
    with pytest.raises(ConfigError) as err:
        reg.resolve("champion")
    text = str(err.value) + " " + (err.value.hint or "")
    assert "has no version 'champion'" in text
    assert f"version {version} is the challenger, kept back by the gate" in text
    assert "--model challenger" in text


def test_other_missing_aliases_keep_the_plain_hint(registry):
    reg, _, _ = registry
    with pytest.raises(ConfigError) as err:
        reg.resolve("champion")
    assert "train first" in (err.value.hint or "")
    assert reg.resolve("1").version == "1"
