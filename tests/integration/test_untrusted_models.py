"""A registered version that is not deepcast's model is refused before anything of it runs
(``deepcast forecast``, the batch-forecast flow, the promotion gate, ``promote --rollback``);
a model logged with the entry script of before the package rename still loads and forecasts.
Real SQLite MLflow store; MLflow's own pickle guard is turned off, so that deepcast's check
is what stops the payload."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from deepcast.features.errors import ConfigError
from deepcast.pipelines.artifacts import serving_example
from deepcast.pipelines.config import load_config
from deepcast.pipelines.ingest import ingest
from deepcast.pipelines.modelling import (
    fit_model,
    prepare,
    training_settings,
    user_frame,
)
from deepcast.pipelines.tracking import Tracker
from deepcast.pipelines.tracking import tags as tag
from deepcast.pipelines.tracking.loader import check_mlmodel
from deepcast.pipelines.tracking.model import LEGACY_PYFUNC_ENTRY, DeepcastModel
from deepcast.pipelines.validate import validate_long_frame
from tests.integration.conftest import subprocess_env, write_pipeline

pytestmark = pytest.mark.integration

NAME = "it-untrusted"
MARKER_ENV = "DEEPCAST_TEST_MARKER"  # where the payload writes when it runs
PICKLED = "not a deepcast model: it holds a pickled python_model"


def _payload():
    """A pyfunc whose ``load_context`` writes the file named by $DEEPCAST_TEST_MARKER.
    Defined in a function, so cloudpickle stores the class itself (by value)."""
    import mlflow.pyfunc

    class Payload(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            if os.environ.get(MARKER_ENV):
                Path(os.environ[MARKER_ENV]).write_text("payload ran")

        def predict(self, context, model_input, params=None):
            return model_input

    return Payload()


@pytest.fixture
def setup(store, tmp_path, retail_csv):
    """(pipeline YAML, config, clean frame, a fitted naive predictor, tracker)."""
    pipeline = write_pipeline(tmp_path, retail_csv, name=NAME, models=[{"type": "naive"}])
    cfg = load_config(pipeline)
    clean, _ = validate_long_frame(ingest(cfg.data), cfg)
    predictor, _, _ = fit_model(cfg.models[0], prepare(clean, cfg), training_settings(cfg))
    return pipeline, cfg, clean, predictor, Tracker(NAME)


def _log_pickled(tracker: Tracker, predictor, tmp_path: Path) -> tuple[str, str]:
    """(model URI, run id) of a cloudpickled pyfunc carrying a genuine deepcast bundle."""
    import mlflow.pyfunc

    bundle = predictor.save(tmp_path / "evil-bundle")
    with tracker.run("not-deepcast") as run_id:
        info = mlflow.pyfunc.log_model(name="model", python_model=_payload(),
                                       artifacts={"bundle": str(bundle)},
                                       pip_requirements=["mlflow"])
    return info.model_uri, run_id


def _register(tracker: Tracker, model_uri: str, run_id: str, alias: str | None = None,
              **tags: str):
    ref = tracker.registry.register(model_uri, run_id, tags)
    if alias:
        tracker.registry.set_alias(alias, ref.version)
    return ref


def _cli(*args: str, cwd: Path, marker: Path, **env: str):
    return subprocess.run([sys.executable, "-m", "deepcast", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300,
                          env=subprocess_env(**{MARKER_ENV: str(marker),
                                                "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
                                                **env}))


def test_pickled_champion_is_refused_by_forecast_and_the_gate(
        prefect_harness, setup, tmp_path, monkeypatch):
    import mlflow.pyfunc
    from prefect.settings import PREFECT_API_URL

    from deepcast.flows.flows import batch_forecast
    from deepcast.pipelines.gate import rescore_champion

    pipeline, cfg, clean, predictor, tracker = setup
    ref = _register(tracker, *_log_pickled(tracker, predictor, tmp_path), alias="champion")
    marker, out = tmp_path / "marker", tmp_path / "fc.csv"

    # 1. the CLI: exit 2 naming the model, the version and why; nothing of it ran
    done = _cli("forecast", str(pipeline), "--output", str(out), cwd=tmp_path, marker=marker,
                PREFECT_API_URL=PREFECT_API_URL.value())
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"registered model '{NAME}' version {ref.version}: {PICKLED}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists() and not out.exists()

    # 2. the flow on its own (no CLI pre-flight): refused at the load
    monkeypatch.setenv(MARKER_ENV, str(marker))
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    with pytest.raises(ConfigError, match=PICKLED):
        batch_forecast(pipeline=str(pipeline), output=str(out))
    assert not marker.exists() and not out.exists()

    # 3. the gate: the champion is not loaded; kept unscored, the reason in the note
    champ = rescore_champion(tracker.registry, clean, cfg)
    assert (champ.version, champ.score) == (ref.version, None) and PICKLED in champ.note
    assert not marker.exists()

    # control: MLflow's own loader does run it (what deepcast's loader avoids)
    mlflow.pyfunc.load_model(ref.uri)
    assert marker.read_text() == "payload ran"


def test_rollback_to_a_pickled_version_is_refused(setup, tmp_path):
    pipeline, cfg, clean, predictor, tracker = setup
    evil = _register(tracker, *_log_pickled(tracker, predictor, tmp_path))
    with tracker.run("genuine") as run_id:
        uri = tracker.log_predictor(predictor, serving_example(prepare(clean, cfg))).uri
    good = _register(tracker, uri, run_id, alias="champion",
                     **{tag.REPLACED_VERSION: evil.version})
    marker = tmp_path / "marker"

    done = _cli("promote", str(pipeline), "--rollback", cwd=tmp_path, marker=marker)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"registered model '{NAME}' version {evil.version}: {PICKLED}" in done.stderr
    assert "Traceback" not in done.stderr and not marker.exists()
    assert tracker.registry.aliases() == {"champion": good.version}  # no alias moved
    assert tag.ROLLED_BACK_AT not in tracker.registry.version_tags(good.version)


def test_other_code_models_are_refused(setup, tmp_path, monkeypatch):
    """A models-from-code version whose script is not deepcast's entry script: refused,
    its script never imported."""
    import mlflow.pyfunc

    _, _, _, predictor, tracker = setup
    script = tmp_path / "other_model.py"
    script.write_text(
        "import os, pathlib\nimport mlflow.pyfunc\nfrom mlflow.models import set_model\n"
        f"if os.environ.get({MARKER_ENV!r}):\n"
        f"    pathlib.Path(os.environ[{MARKER_ENV!r}]).write_text('script ran')\n"
        "class Other(mlflow.pyfunc.PythonModel):\n"
        "    def predict(self, context, model_input, params=None):\n"
        "        return model_input\n"
        "set_model(Other())\n")
    bundle = predictor.save(tmp_path / "bundle")
    with tracker.run("other-code") as run_id:
        info = mlflow.pyfunc.log_model(name="model", python_model=str(script),
                                       artifacts={"bundle": str(bundle)},
                                       pip_requirements=["mlflow"])
    ref = _register(tracker, info.model_uri, run_id, alias="champion")
    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    with pytest.raises(ConfigError, match="code file other_model.py is not deepcast's entry"):
        tracker.registry.load(tracker.registry.resolve("champion"))
    with pytest.raises(ConfigError, match=f"version {ref.version}: not a deepcast model"):
        tracker.registry.verify(ref)
    assert not marker.exists()


GOOD = {"flavors": {"python_function": {
    "loader_module": "mlflow.pyfunc.loaders.code_model", "code": None,
    "model_code_path": "/tmp/x/deepcast_model.py",
    "artifacts": {"bundle": {"path": "artifacts/bundle", "uri": "/tmp/x/bundle"}}}}}


def _variant(**pyfunc) -> dict:
    return {"flavors": {"python_function": {**GOOD["flavors"]["python_function"], **pyfunc}}}


@pytest.mark.parametrize("conf, why", [
    ({"flavors": {"keras": {}}}, "no python_function flavour"),
    (_variant(python_model="python_model.pkl"), PICKLED),
    (_variant(loader_module="evil.loader"), "loader module is 'evil.loader'"),
    (_variant(code="code"), "ships code paths"),
    (_variant(model_code_path=None), "no models-from-code script"),
    (_variant(artifacts={}), "no 'bundle' artifact"),
    (_variant(artifacts={"bundle": {"path": "../../etc"}}), "no 'bundle' artifact"),
    ("not a mapping", "no python_function flavour"),
])
def test_mlmodel_check_names_the_reason(conf, why):
    assert check_mlmodel(GOOD, "m") == ("deepcast_model.py", "artifacts/bundle")
    with pytest.raises(ConfigError, match=why):
        check_mlmodel(conf, "registered model 'm' version 3")


def test_model_logged_with_the_legacy_entry_script_still_forecasts(
        prefect_harness, setup, tmp_path, monkeypatch):
    """A version registered before the package rename (its script imports
    ``pipelines.tracking``) loads through deepcast's loader and forecasts."""
    import mlflow.artifacts
    import mlflow.pyfunc

    from deepcast.flows.flows import batch_forecast

    pipeline, cfg, clean, predictor, tracker = setup
    entry = tmp_path / "deepcast_model.py"
    entry.write_text(LEGACY_PYFUNC_ENTRY)
    bundle = predictor.save(tmp_path / "bundle")
    with monkeypatch.context() as m, tracker.run("legacy") as run_id:
        # MLflow runs the script while logging: the old module layout exists only here
        legacy = types.ModuleType("pipelines.tracking")
        legacy.DeepcastModel = DeepcastModel
        m.setitem(sys.modules, "pipelines", types.ModuleType("pipelines"))
        m.setitem(sys.modules, "pipelines.tracking", legacy)
        info = mlflow.pyfunc.log_model(name="model", python_model=str(entry),
                                       artifacts={"bundle": str(bundle)},
                                       pip_requirements=["mlflow"])
    ref = _register(tracker, info.model_uri, run_id, alias="champion")
    stored = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{tracker.client.get_model_version_download_uri(NAME, ref.version)}"
        "/deepcast_model.py", dst_path=str(tmp_path / "stored"))
    assert Path(stored).read_text() == LEGACY_PYFUNC_ENTRY

    out = tmp_path / "legacy.csv"
    summary = batch_forecast(pipeline=str(pipeline), output=str(out))
    assert summary.model_version == ref.version and summary.model_name == "naive"
    fc = pd.read_csv(out, dtype={"unique_id": str}, parse_dates=["ds"])
    expected = predictor.predict(user_frame(clean, cfg))
    assert len(fc) == len(expected) == 6 * cfg.features.horizon
    assert (fc["model_version"] == int(ref.version)).all()
    both = fc.merge(expected, on=["unique_id", "ds"], suffixes=("", "_expected"))
    assert len(both) == len(fc)
    assert both["yhat"].to_numpy() == pytest.approx(both["yhat_expected"].to_numpy())
