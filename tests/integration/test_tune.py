"""Hyperparameter search: Optuna samplers, pruning, nested MLflow runs, the tuned YAML."""

from __future__ import annotations

import pytest
import yaml

from deepcast.features.errors import ConfigError
from deepcast.flows.flows import tune_pipeline
from deepcast.pipelines.config import load_config, parse_config
from deepcast.pipelines.tracking import Tracker
from tests.conftest import pipeline_dict
from tests.integration.conftest import write_pipeline

pytestmark = pytest.mark.integration

SPACE = {"hidden_size": {"choice": [8, 16]}, "layers": {"int": [1, 2]},
         "training.learning_rate": {"float": [1e-3, 1e-2], "log": True}}


@pytest.mark.parametrize("sampler", ["tpe", "grid"])
def test_tune_writes_a_ready_pipeline(prefect_harness, store, tmp_path, retail_csv, sampler):
    space = dict(SPACE)
    if sampler == "grid":
        space["training.learning_rate"] = {"choice": [1e-3, 1e-2]}
    pipeline = write_pipeline(
        tmp_path, retail_csv, name=f"it-tune-{sampler}",
        models=[{"type": "seasonal_naive"}, {"type": "mlp", "hidden_size": 32}],
        training={"max_epochs": 3, "patience": 2, "batch_size": 64, "seed": 0})
    raw = yaml.safe_load(pipeline.read_text())
    raw["tune"] = {"model": "mlp", "sampler": sampler, "trials": 4, "space": space,
                   "prune_after": 2}
    pipeline.write_text(yaml.safe_dump(raw, sort_keys=False))

    summary = tune_pipeline(pipeline=str(pipeline), trials=5)
    trials = summary.trials
    assert len(trials) == 5 and {t["state"] for t in trials} <= {"complete", "pruned"}
    best = summary.best_params
    assert best["hidden_size"] in (8, 16) and best["layers"] in (1, 2)

    # the tuned YAML loads as a pipeline and carries the best values
    tuned = load_config(summary.output)
    mlp = next(m for m in tuned.models if m.type == "mlp")
    assert (mlp.hidden_size, mlp.layers) == (best["hidden_size"], best["layers"])
    assert tuned.training.learning_rate == pytest.approx(best["training.learning_rate"])
    assert "tune" not in yaml.safe_load(open(summary.output))
    # one parent run, one nested run per trial
    tracker = Tracker(f"it-tune-{sampler}")
    children = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{summary.parent_run_id}'")
    assert len(children) == 5


def test_tune_space_is_validated(retail_csv):
    raw = pipeline_dict(retail_csv)
    raw["tune"] = {"model": "lstm", "space": {"units": {"int": [4, 16]}}}
    assert parse_config(raw).tune.space["units"].kind == "int"
    for space, text in [({"unitz": {"int": [4, 16]}}, "unitz"),
                        ({"units": {"int": [16, 4]}}, "empty"),
                        ({"units": {"int": [4, 16], "choice": [1]}}, "exactly one"),
                        ({"training.lr": {"float": [0.1, 1.0]}}, "training.lr"),
                        ({"dropout": {"float": [0.0, 0.5], "log": True}}, "positive")]:
        raw["tune"] = {"model": "lstm", "space": space}
        with pytest.raises(ConfigError, match=text):
            parse_config(raw)
    raw["tune"] = {"model": "prophet", "space": {"units": {"int": [4, 16]}}}
    with pytest.raises(ConfigError, match="prophet"):
        parse_config(raw)


def test_tune_without_a_tune_section_exits_2(tmp_path, retail_csv):
    import subprocess
    import sys

    from tests.integration.conftest import subprocess_env

    pipeline = write_pipeline(tmp_path, retail_csv, name="no-tune")
    done = subprocess.run([sys.executable, "-m", "deepcast", "tune", str(pipeline)],
                          capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(),
                          timeout=120)
    assert done.returncode == 2 and "no `tune:` section" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_space_the_option_refuses_is_named(store, retail_csv):
    """Every trial refused by the model's options: exit 2 naming the option, its value and
    why (before: 'no tuning trial completed', exit 1, the reason never shown)."""
    import deepcast

    raw = pipeline_dict(retail_csv, name="it-tune-bad", models=[{"type": "mlp"}])
    raw["tune"] = {"model": "mlp", "trials": 2, "space": {"dropout": {"float": [1.5, 3.0]}}}
    with pytest.raises(ConfigError, match=r"tune.space: no value tried for 'mlp' is valid: "
                       r"trial 0: dropout [\d.]+: Input should be less than 1"):
        deepcast.tune(raw)
