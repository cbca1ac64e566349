"""Pipeline YAML validation: errors name the key, the value and what is allowed."""

from pathlib import Path

import pytest

from features.errors import ConfigError
from pipelines.config import load_config, parse_config
from tests.conftest import ROOT, pipeline_dict


def _err(raw, tmp_path=None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="p.yaml")
    assert info.value.exit_code == 2
    return str(info.value)


def test_demo_pipeline_is_valid():
    cfg = load_config(ROOT / "pipelines" / "demo.yaml")
    assert cfg.name == "aus-retail"
    assert cfg.data.path.is_absolute() and cfg.data.path.is_file()
    assert [m.label for m in cfg.models] == ["naive", "seasonal_naive", "lstm"]
    assert cfg.min_series_length == 36 + 12 + 12


def test_defaults_fill_in(retail_csv):
    cfg = parse_config(pipeline_dict(retail_csv))
    assert cfg.training.loss == "mae" and cfg.promotion.margin == 0.0
    assert cfg.val_size == cfg.features.horizon
    assert cfg.data.short_series == "drop" and cfg.data.missing_y == "error"


def test_unknown_key_is_named_with_allowed_keys(retail_csv):
    raw = pipeline_dict(retail_csv)
    raw["data"]["colour"] = "blue"
    msg = _err(raw)
    assert "data.colour: unknown key" in msg and "id_col" in msg


def test_unknown_model_type_lists_known_types(retail_csv):
    msg = _err(pipeline_dict(retail_csv, models=[{"type": "prophet"}]))
    assert "'prophet'" in msg and "lstm" in msg and "seasonal_naive" in msg


def test_bad_values_name_key_and_value(retail_csv):
    msg = _err(pipeline_dict(retail_csv, features={"lookback": 0, "horizon": -3}))
    assert "features.lookback" in msg and "(got 0)" in msg
    assert "features.horizon" in msg and "(got -3)" in msg


def test_model_option_errors(retail_csv):
    msg = _err(pipeline_dict(retail_csv, models=[{"type": "lstm", "units": "many"}]))
    assert "models.0.units" in msg and "'many'" in msg
    msg = _err(pipeline_dict(retail_csv, models=[{"type": "naive", "units": 3}]))
    assert "models.0.units: unknown key" in msg


def test_missing_required_section(retail_csv):
    raw = pipeline_dict(retail_csv)
    del raw["evaluation"]
    assert "evaluation: required key is missing" in _err(raw)


def test_bad_freq_and_duplicate_names(retail_csv):
    raw = pipeline_dict(retail_csv)
    raw["data"]["freq"] = "fortnightly"
    assert "'fortnightly' is not a pandas offset alias" in _err(raw)
    msg = _err(pipeline_dict(retail_csv, models=[{"type": "naive"}, {"type": "naive"}]))
    assert "duplicate model name" in msg


def test_lookback_must_cover_a_season(retail_csv):
    raw = pipeline_dict(retail_csv, features={"lookback": 6, "horizon": 3})
    assert "season_length" in _err(raw)


def test_integer_freq(m3_csv):
    raw = pipeline_dict(m3_csv)
    raw["data"]["freq"] = 1
    assert parse_config(raw).data.freq == 1
    raw["data"]["freq"] = "1"
    assert parse_config(raw).data.freq == 1


def test_yaml_errors(tmp_path: Path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "evil.yaml").write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load_config(tmp_path / "evil.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_paths_are_relative_to_the_yaml(tmp_path: Path, retail_csv):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.csv").write_bytes(retail_csv.read_bytes())
    (tmp_path / "p.yaml").write_text(
        "name: rel\ndata: {path: sub/d.csv, freq: MS, season_length: 12}\n"
        "features: {lookback: 24, horizon: 6}\nmodels: [{type: naive}]\n"
        "evaluation: {test_size: 6}\n")
    assert load_config(tmp_path / "p.yaml").data.path == (tmp_path / "sub" / "d.csv").resolve()
