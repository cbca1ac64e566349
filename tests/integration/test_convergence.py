"""A model stopped by ``training.max_epochs`` while its validation loss still fell is
reported as not converged: on its result row, its MLflow model run (tags), the ``--json``
of ``train`` and the summary the CLI prints."""

from __future__ import annotations

import argparse
import json

import pytest

import deepcast
from deepcast.flows import commands
from deepcast.pipelines.tracking import tags as tag
from tests.conftest import pipeline_dict

pytestmark = pytest.mark.integration


def test_max_epochs_while_improving_is_reported(store, retail_csv, monkeypatch, capsys):
    import mlflow

    cfg = pipeline_dict(retail_csv, name="it-converge",
                        models=[{"type": "seasonal_naive"}, {"type": "mlp", "hidden_size": 8}],
                        training={"max_epochs": 1, "patience": 5, "batch_size": 64,
                                  "seed": 0})
    trained = deepcast.train(cfg)
    rows = {r["model"]: r for r in trained.table}
    assert rows["mlp"]["converged"] is False and rows["mlp"]["epochs"] == 1
    assert rows["seasonal_naive"]["converged"] is None  # nothing to train
    per_model = [n for n in trained.notes if n.startswith(("mlp:", "seasonal_naive:"))]
    assert len(per_model) == 1 and per_model[0].startswith("mlp: not converged")
    assert "max_epochs=1" in per_model[0]

    as_json = json.loads(json.dumps(trained.to_dict(), default=str))
    assert as_json["notes"] == trained.notes
    assert as_json["table"][1]["converged"] is False

    runs = mlflow.search_runs(experiment_names=["it-converge"], output_format="list",
                              filter_string="tags.mlflow.parentRunId = "
                                            f"'{trained.parent_run_id}'")
    by_name = {r.info.run_name: r.data.tags for r in runs}
    assert by_name["mlp"][tag.CONVERGED] == "false"
    assert "raise training.max_epochs" in by_name["mlp"][tag.CONVERGENCE_REASON]
    assert tag.CONVERGED not in by_name["seasonal_naive"]

    # the summary `deepcast train` prints carries the note under the table
    monkeypatch.setattr(commands, "_preflight", lambda args: None)
    monkeypatch.setattr(commands, "_launch", lambda *a, **k: trained)
    args = argparse.Namespace(pipeline="p.yaml", data=None, report_dir=None, quiet=False,
                              json=False)
    assert commands.cmd_train(args) == 0
    out = capsys.readouterr().out
    assert "converged" in out and f"note: {trained.notes[0]}" in out
