"""Bad and hostile pipeline files: names that would become paths, YAML that silently loses
keys, nests or expands without bound, and old pandas frequency aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepcast.features.errors import ConfigError
from deepcast.pipelines.config import load_config, parse_config
from tests.conftest import pipeline_dict


def _err(raw) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="p.yaml")
    assert info.value.exit_code == 2
    return str(info.value)


def _load_err(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == 2 and "p.yaml" in str(info.value)
    return info.value


# -- names -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "a/b", "../../etc", "my model", "<lstm>", "-x",
                                  "a\\b", ""])
def test_model_name_must_be_a_safe_name(retail_csv, name):
    msg = _err(pipeline_dict(retail_csv, models=[{"type": "naive", "name": name}]))
    assert "models.0.name" in msg and repr(name) in msg
    assert "letters, digits" in msg


def test_bagged_model_name_is_checked_too(retail_csv):
    msg = _err(pipeline_dict(retail_csv, ensemble=[
        {"name": "bag", "method": "bagging", "model": {"type": "mlp", "name": "a/b"}}]))
    assert "ensemble.0.model.name" in msg and "'a/b'" in msg


def test_good_model_names_pass(retail_csv):
    cfg = parse_config(pipeline_dict(retail_csv, models=[
        {"type": "naive", "name": "naive.v2_a-1"}, {"type": "naive", "name": "N" * 100}]))
    assert [m.label for m in cfg.models] == ["naive.v2_a-1", "N" * 100]


@pytest.mark.parametrize("where", ["pipeline", "model", "ensemble"])
def test_names_are_capped_at_100_characters(retail_csv, where):
    long = "a" * 600
    if where == "pipeline":
        raw, key = pipeline_dict(retail_csv, name=long), "name"
    elif where == "model":
        raw, key = pipeline_dict(retail_csv, models=[{"type": "naive", "name": long}]), \
            "models.0.name"
    else:
        raw, key = pipeline_dict(retail_csv, ensemble=[
            {"name": long, "method": "mean", "members": ["naive", "lstm"]}]), "ensemble.0.name"
    msg = _err(raw)
    assert f"  - {key}: " in msg and "at most 100 characters" in msg and "600" in msg
    assert long not in msg  # the value is shortened in the message


def test_pipeline_and_ensemble_names_say_what_is_allowed(retail_csv):
    assert "letters, digits" in _err(pipeline_dict(retail_csv, name="my pipeline"))
    msg = _err(pipeline_dict(retail_csv, ensemble=[
        {"name": "../e", "method": "mean", "members": ["naive", "lstm"]}]))
    assert "ensemble.0.name" in msg and "letters, digits" in msg
