"""Bad and hostile pipeline files: names that would become paths, YAML that silently loses
keys, nests or expands without bound, and old pandas frequency aliases."""

from __future__ import annotations

import logging
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


# -- YAML hardening ----------------------------------------------------------------------

def test_duplicate_keys_are_errors_naming_key_and_line(tmp_path: Path):
    err = _load_err(tmp_path, "name: a\ndata:\n  freq: D\n  freq: h\nname: b\n")
    assert "duplicate key 'freq'" in str(err) and "line 4" in str(err)
    assert "line 3" in str(err)  # where it was first given


def test_merge_keys_still_work(tmp_path: Path, retail_csv):
    (tmp_path / "d.csv").write_bytes(retail_csv.read_bytes())
    (tmp_path / "p.yaml").write_text(
        "name: merge\n"
        "data: {path: d.csv, freq: MS, season_length: 12}\n"
        "features: {lookback: 24, horizon: 6}\n"
        "models:\n  - &m {type: lstm, name: a, units: 8}\n  - {<<: *m, name: b}\n"
        "evaluation: {test_size: 6}\n")
    cfg = load_config(tmp_path / "p.yaml")
    assert [m.label for m in cfg.models] == ["a", "b"] and cfg.models[1].units == 8


def test_deep_nesting_is_a_config_error(tmp_path: Path):
    err = _load_err(tmp_path, "name: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert "nest" in str(err) and "levels" in str(err)
    block = "name: x\ndeep:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(300))
    assert "nest" in str(_load_err(tmp_path, block + "  " * 301 + "v: 1\n"))


def _valid_yaml(tmp_path: Path, retail_csv: Path, choice: str) -> str:
    (tmp_path / "d.csv").write_bytes(retail_csv.read_bytes())
    return ("name: p\n"
            "data: {path: d.csv, freq: MS, season_length: 12}\n"
            "features: {lookback: 24, horizon: 6}\n"
            "models: [{type: lstm, units: 8}]\n"
            f"tune: {{model: lstm, space: {{units: {{choice: {choice}}}}}}}\n"
            "evaluation: {test_size: 6}\n")


def test_alias_bomb_is_refused(tmp_path: Path, retail_csv):
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    err = _load_err(tmp_path, _valid_yaml(tmp_path, retail_csv, "[" + ", ".join(levels) + "]"))
    assert "aliases expand" in str(err) and "line 5" in str(err)


def test_recursive_alias_is_refused(tmp_path: Path, retail_csv):
    err = _load_err(tmp_path, _valid_yaml(tmp_path, retail_csv, "&a [1, *a]"))
    assert "alias *a" in str(err) and "inside itself" in str(err)


def test_small_aliases_are_fine(tmp_path: Path, retail_csv):
    (tmp_path / "d.csv").write_bytes(retail_csv.read_bytes())
    (tmp_path / "p.yaml").write_text(
        "name: alias\n"
        "data: {path: d.csv, freq: MS, season_length: 12}\n"
        "features: {lookback: 24, horizon: 6}\n"
        "models: [{type: lstm, units: 8}]\n"
        "tune: {model: lstm, space: {units: {choice: &u [4, 8, 16]}, "
        "dropout: {choice: [0.0, 0.1]}}}\n"
        "evaluation: {test_size: 6, conformal: *u}\n")
    assert load_config(tmp_path / "p.yaml").evaluation.conformal == [4, 8, 16]


# -- data.freq ---------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new"), [
    ("H", "h"), ("2H", "2h"), ("T", "min"), ("30T", "30min"), ("S", "s"), ("L", "ms"),
    ("U", "us"), ("N", "ns"), ("BH", "bh"), ("M", "ME"), ("BM", "BME"), ("SM", "SME"),
    ("A", "YE"), ("Y", "YE"), ("A-DEC", "YE-DEC"), ("Y-JUN", "YE-JUN"), ("AS", "YS"),
    ("AS-JAN", "YS-JAN"), ("BA", "BYE"), ("BAS", "BYS"), ("Q", "QE"), ("Q-NOV", "QE-NOV"),
    ("BQ", "BQE"), ("3M", "3ME"), ("CBM", "CBME")])
def test_old_pandas_aliases_map_to_current_ones(retail_csv, caplog, old, new):
    raw = pipeline_dict(retail_csv)
    raw["data"]["freq"] = old
    with caplog.at_level(logging.WARNING, logger="deepcast"):
        cfg = parse_config(raw)
    assert cfg.data.freq == new
    notes = [r.getMessage() for r in caplog.records if "data.freq" in r.getMessage()]
    assert len(notes) == 1 and repr(old) in notes[0] and repr(new) in notes[0]


def test_month_end_note_points_to_month_start(retail_csv, caplog):
    raw = pipeline_dict(retail_csv)
    raw["data"]["freq"] = "M"
    with caplog.at_level(logging.WARNING, logger="deepcast"):
        parse_config(raw)
    assert "'MS'" in caplog.text


def test_current_aliases_are_unchanged_and_quiet(retail_csv, caplog):
    for freq in ("MS", "h", "30min", "D", "W-SUN", "QS", "YE"):
        raw = pipeline_dict(retail_csv)
        raw["data"]["freq"] = freq
        with caplog.at_level(logging.WARNING, logger="deepcast"):
            assert parse_config(raw).data.freq == freq
    assert "data.freq" not in caplog.text


@pytest.mark.parametrize(("given", "hint"), [
    ("fortnightly", "'2W'"), ("hourly", "'h'"), ("Hour", "'h'"), ("30 minutes", "'30min'"),
    ("monthly", "'MS'"), ("dayly", "'D'"), ("MSS", "'MS'")])
def test_unknown_freq_gets_a_did_you_mean(retail_csv, given, hint):
    raw = pipeline_dict(retail_csv)
    raw["data"]["freq"] = given
    msg = _err(raw)
    assert f"'{given}' is not a pandas offset alias" in msg
    assert "did you mean" in msg and hint in msg
