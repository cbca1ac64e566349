"""The MLflow and Prefect UIs as a user sees them after `deepcast retrain`: real servers on
127.0.0.1, pages rendered by headless Chromium (the helpers of scripts/ui_screenshots.py,
which also makes the screenshots in docs/)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import ROOT, mlflow_store
from tests.servers import mlflow_server, prefect_server

pytestmark = pytest.mark.integration

_spec = importlib.util.spec_from_file_location("ui_screenshots",
                                               ROOT / "scripts" / "ui_screenshots.py")
ui = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ui)
WHY = ui.browser_missing()


def test_an_experiment_is_marked_as_model_training_unless_the_user_chose(tmp_path):
    from mlflow import MlflowClient

    from deepcast.pipelines.tracking import Tracker
    from deepcast.pipelines.tracking.store import EXPERIMENT_KIND, TRAINING_KIND

    uri = mlflow_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    client.create_experiment("old")  # made before deepcast tagged experiments
    client.create_experiment("chosen", tags={EXPERIMENT_KIND: "genai_development"})
    client.create_experiment("guessed", tags={EXPERIMENT_KIND: "genai_development_inferred"})
    kinds = {}
    for name in ("new", "old", "chosen", "guessed"):
        exp_id = Tracker(name, uri).experiment_id
        kinds[name] = client.get_experiment(exp_id).tags.get(EXPERIMENT_KIND)
    assert kinds == {"new": TRAINING_KIND, "old": TRAINING_KIND,
                     "chosen": "genai_development", "guessed": TRAINING_KIND}


@pytest.mark.slow
@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_the_uis_show_runs_datasets_models_and_artifacts(tmp_path):
    from mlflow import MlflowClient

    from deepcast.pipelines.tracking.store import experiment_links, experiment_url

    with mlflow_server(tmp_path / "mlflow") as url, \
            prefect_server(tmp_path / "prefect", ui=True) as api:
        done = ui.retrain(ui.pipeline(tmp_path, "shop"), url, api, tmp_path / "f.csv")
        assert done.returncode == 0, done.stderr[-3000:]
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        exp = client.get_experiment_by_name("shop")
        runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
        assert set(runs) == {"train-shop", "naive", "seasonal_naive", "mlp"}
        digest = runs["train-shop"].inputs.dataset_inputs[0].dataset.digest
        # the parent's description is the leaderboard; every run links both datasets
        assert "| model | type |" in runs["train-shop"].data.tags["mlflow.note.content"]
        for run in runs.values():
            assert {(d.dataset.name, d.tags[0].value) for d in run.inputs.dataset_inputs} == {
                ("shop", "training"), ("shop.holdout", "holdout")}
        # each model run's logged model carries its params and holdout scores
        model = client.get_logged_model(runs["mlp"].outputs.model_outputs[0].model_id)
        scores = {m.key: m for m in model.metrics}
        assert model.name == "mlp" and model.params["model.hidden_size"] == "16"
        assert scores["holdout_mase"].dataset_name == "shop.holdout"
        assert json.loads(client.get_run(runs["mlp"].info.run_id).inputs.dataset_inputs[0]
                          .dataset.profile)["num_series"] == 6
        champion = client.get_model_version_by_alias("shop", "champion")

        (_, link), = experiment_links(url, url)  # the link `deepcast ui` prints
        with ui.browser() as page:
            # the experiment opens on its training runs, with the dataset column filled
            text = ui.render(page, link, "train-shop", tmp_path / "runs.png")
            assert "Model training" in text and "Runs" in text
            assert f"shop ({digest})" in text and "Training" in text
            text = ui.expand_runs(page, "train-shop", "seasonal_naive")
            assert all(name in text for name in ("naive", "seasonal_naive", "mlp"))
            # a model run: holdout metrics, its logged model, the holdout dataset
            text = ui.render(page, experiment_url(url, exp.experiment_id,
                                                  f"/runs/{runs['mlp'].info.run_id}"),
                             "holdout_mase")
            assert "skill_mase" in text and "Logged models" in text
            assert f"shop.holdout (#{digest})" in text
            # the Models tab lists the models by name, beside their runs
            text = ui.render(page, experiment_url(url, exp.experiment_id, "/models"),
                             "seasonal_naive")
            assert "mlp" in text and "Source run" in text
            # the champion's version page links back to the run that made it
            text = ui.render(page, f"{url}/#/models/shop/versions/{champion.version}",
                             "Source Run")
            assert client.get_run(champion.run_id).info.run_name in text
            assert "champion" in text
            # Prefect: the retrain's artifacts
            text = ui.render(page, api.removesuffix("/api") + "/artifacts", "shop-decision",
                             tmp_path / "prefect.png")
            assert all(f"shop-{key}" in text for key in ("model-scores", "mlflow-run",
                                                         "forecast-file"))
