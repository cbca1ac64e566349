"""Pipeline YAML validation: errors name the key, the value and what is allowed."""

from pathlib import Path

import pytest

from deepcast.features.errors import ConfigError
from deepcast.pipelines.config import load_config, parse_config
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
    assert [m.label for m in cfg.models] == ["naive", "seasonal_naive", "linear", "mlp", "lstm"]
    assert cfg.min_series_length == 36 + 12 + 12 + 24
    assert cfg.min_padded_length == 12 + 12 + 24 + 1
    assert cfg.evaluation.conformal == [80, 95] and cfg.evaluation.backtest.step == 6


def test_defaults_fill_in(retail_csv):
    cfg = parse_config(pipeline_dict(retail_csv))
    assert cfg.training.loss == "mae" and cfg.promotion.margin == 0.0
    assert cfg.val_size == cfg.features.horizon
    assert cfg.data.short_series == "pad" and cfg.data.missing_y == "error"


def test_unknown_key_is_named_with_allowed_keys(retail_csv):
    raw = pipeline_dict(retail_csv)
    raw["data"]["colour"] = "blue"
    msg = _err(raw)
    assert "data.colour: unknown key" in msg and "id_col" in msg


@pytest.mark.parametrize(("data", "named"), [
    ({"future": ["promo", "promo"]}, "declared twice"),
    ({"static": ["unique_id"]}, "declared twice or are the id/time/target column"),
    # the YAML renames the columns: a covariate named like deepcast's own names would
    # receive the renamed id/time/target (a pandas error deep in the run before)
    ({"id_col": "store", "static": ["unique_id"]}, "rename the covariate in the data"),
    ({"target_col": "sales", "future": ["y"]}, "have the name deepcast gives"),
    ({"time_col": "day", "past": ["ds"]}, "have the name deepcast gives"),
])
def test_covariate_names_that_clash(retail_csv, data, named):
    raw = pipeline_dict(retail_csv)
    raw["data"].update(data)
    assert named in _err(raw)


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


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn", "mlp", "cnn", "linear",
                                    "transformer", "mean", "drift"])
def test_every_family_is_a_model_type_with_strict_options(retail_csv, family):
    cfg = parse_config(pipeline_dict(retail_csv, models=[{"type": family}]))
    assert cfg.models[0].type == family
    msg = _err(pipeline_dict(retail_csv, models=[{"type": family, "colour": 1}]))
    assert "models.0.colour: unknown key" in msg and "allowed keys here:" in msg


def test_family_option_rules_are_reported(retail_csv):
    msg = _err(pipeline_dict(retail_csv, models=[
        {"type": "transformer", "d_model": 10, "heads": 3}]))
    assert "models.0" in msg and "divisible by heads" in msg
    msg = _err(pipeline_dict(retail_csv, models=[{"type": "mlp", "quantiles": [0.1, 1.5]}]))
    assert "models.0.quantiles" in msg and "between 0 and 1" in msg
    cfg = parse_config(pipeline_dict(retail_csv, models=[{"type": "mlp",
                                                           "quantiles": [0.9, 0.1]}]))
    assert cfg.models[0].quantiles == [0.1, 0.5, 0.9]


def test_training_engine_options(retail_csv):
    raw = pipeline_dict(retail_csv)
    raw["training"] = {"optimizer": "adamw", "schedule": "cosine", "clipnorm": 1.0,
                       "device": "cpu", "mixed_precision": False}
    cfg = parse_config(raw)
    assert cfg.training.optimizer == "adamw" and cfg.training.device == "cpu"
    raw["training"] = {"optimizer": "lbfgs", "device": "quantum"}
    msg = _err(raw)
    assert "training.optimizer" in msg and "'lbfgs'" in msg and "training.device" in msg


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
    bagged = pipeline_dict(retail_csv, models=[{"type": "naive", "name": "bag_1"}])
    bagged["ensemble"] = [{"name": "bag", "method": "bagging", "model": {"type": "mlp"},
                           "n_members": 2}]
    assert "['bag_1'] name a model and a member of a bagging ensemble" in _err(bagged)


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


def test_readme_reference_matches_the_schema():
    from deepcast.pipelines.config import reference_markdown

    text = (ROOT / "README.md").read_text()
    begin = text.index("\n", text.index("<!-- reference:begin")) + 1
    block = text[begin : text.index("<!-- reference:end -->")]
    assert block == reference_markdown(), (
        "README model/training reference is stale: regenerate it with "
        "`python -m deepcast.pipelines.config` and paste it between the reference markers")


def test_benchmark_pipelines_are_valid():
    cfg = load_config(ROOT / "benchmarks" / "m3_monthly.yaml")
    assert cfg.data.path.is_file() and cfg.evaluation.test_size == cfg.features.horizon == 18
    assert {e.name for e in cfg.ensemble} == {"avg-neural", "median-all", "stacked"}
    # every benchmark pipeline parses, and its data file is in the repository
    for path in sorted((ROOT / "benchmarks").rglob("*.yaml")):
        assert load_config(path).data.path.is_file(), path


def test_derived_lengths_in_one_place(retail_csv):
    raw = pipeline_dict(retail_csv)
    raw["evaluation"]["backtest"] = {"n_windows": 3, "step": 2}
    cfg = parse_config(raw)
    n = cfg.lengths
    assert (n.lookback, n.horizon, n.val_size, n.test_size, n.step) == (24, 6, 6, 6, 2)
    assert n.full == cfg.min_series_length == 24 + 6 + 6 + 6
    assert n.padded == cfg.min_padded_length == 6 + 6 + 6 + 1
    assert n.min_length == cfg.min_length == n.padded  # short_series: pad (the default)
    assert n.min_train_length == cfg.min_train_length == n.padded - 6
    assert n.backtest_span == 6 + 2 * 2 and n.holdout_origins == 1
    assert n.with_holdout(None) is n and n.with_holdout(0).full == 24 + 6 + 6
    raw["data"]["short_series"] = "drop"
    raw["training"]["val_size"] = 4
    raw["evaluation"] = {"test_size": 7}
    n = parse_config(raw).lengths
    assert n.min_length == n.full == 24 + 6 + 4 + 7 and n.step == 6
    # default windows: two seasons (24 points) of step 6 = 4, at least 3
    assert n.n_windows == 4 and n.holdout_origins == 2 and n.backtest_span == 6 + 3 * 6
    raw["evaluation"] = {"test_size": 7, "backtest": {"n_windows": 2}}
    assert parse_config(raw).lengths.backtest_span == 6 + 1 * 6


def test_a_missing_covariate_is_named_with_the_users_columns(retail_csv):
    """The message lists the data's columns under the names the YAML gives them, without
    deepcast's own row flags (a helper's newcomer trial saw _row, unique_id, _ds_invalid)."""
    import pandas as pd

    from deepcast.features.errors import DataError
    from deepcast.features.schema import DS, FLAG_COLUMNS, ID, Y
    from deepcast.pipelines.ingest import check_covariate_columns

    raw = pipeline_dict(retail_csv)
    raw["data"].update(id_col="store", time_col="date", target_col="sales", future=["price"])
    cfg = parse_config(raw)
    coerced = pd.Index([FLAG_COLUMNS[0], ID, DS, FLAG_COLUMNS[1], Y, "region"])
    with pytest.raises(DataError) as info:
        check_covariate_columns(coerced, cfg.data, "sales.csv")
    msg = str(info.value)
    assert "missing covariate column(s) ['price']" in msg
    assert "the data has: store, date, sales, region\n" in msg
