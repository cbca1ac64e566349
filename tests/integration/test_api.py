"""The Python API (``import deepcast``) on the small retail slice, with a real SQLite MLflow
store: validate -> train -> forecast in-process without Prefect, typed results whose
``to_dict`` is the CLI's ``--json``, deepcast's errors, and the same metrics and forecast
through ``orchestrator="prefect"``."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import deepcast
from deepcast.pipelines.forecast import FORECAST_COLUMNS
from tests.conftest import mlflow_store, pipeline_dict
from tests.integration.conftest import subprocess_env, write_pipeline

pytestmark = pytest.mark.integration

FAST = {"models": [{"type": "naive"}, {"type": "seasonal_naive"},
                   {"type": "lstm", "units": 8}]}


def _scores(table: list[dict]) -> list[dict]:
    """A metrics table without its timings."""
    return [{k: v for k, v in row.items() if k != "fit_s"} for row in table]


def test_import_is_cheap_and_runs_without_prefect(tmp_path, retail_csv):
    """``import deepcast`` loads no framework; a plain train and forecast never import
    Prefect (a fresh process, config given as a dict, data as a frame)."""
    code = (
        "import sys, json\n"
        "import deepcast\n"
        "heavy = [m for m in ('tensorflow', 'prefect', 'mlflow', 'great_expectations',"
        " 'pandas') if m in sys.modules]\n"
        "import pandas as pd\n"
        "cfg = json.loads(sys.argv[1])\n"
        "df = pd.read_csv(sys.argv[2])\n"
        "trained = deepcast.train(cfg, df)\n"
        "fc = deepcast.forecast(cfg, history=df)\n"
        "print(json.dumps({'heavy': heavy, 'prefect': 'prefect' in sys.modules,"
        " 'promoted': trained.decision.promoted, 'rows': len(fc.forecast)}))\n")
    cfg = pipeline_dict(retail_csv, name="api-fresh", models=[{"type": "seasonal_naive"}])
    env = subprocess_env(MLFLOW_TRACKING_URI=mlflow_store(tmp_path / "mlflow.db"))
    done = subprocess.run([sys.executable, "-c", code, json.dumps(cfg), str(retail_csv)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "heavy": [], "prefect": False, "promoted": True, "rows": 36}


def test_validate_train_forecast_in_process(store, tmp_path, retail_csv):
    pipeline = write_pipeline(tmp_path, retail_csv, name="api-plain", **FAST)
    cfg = deepcast.load_config(pipeline)
    df = pd.read_csv(retail_csv)

    checked = deepcast.validate(cfg, df, report_dir=tmp_path / "rep")
    assert isinstance(checked, deepcast.ValidationResult) and checked.success
    assert checked.to_dict()["n_series"] == 6 and len(checked.clean) == len(df)
    assert "Validation of DataFrame: PASSED" in checked.summary()
    assert (tmp_path / "rep" / "validation.json").is_file()

    trained = deepcast.train(cfg, df)
    assert isinstance(trained, deepcast.TrainResult)
    assert [row["model"] for row in trained.table] == ["naive", "seasonal_naive", "lstm"]
    assert trained.decision.promoted and trained.decision.candidate_version == "1"
    assert list(trained.metrics["model"]) == ["naive", "seasonal_naive", "lstm"]
    as_json = json.loads(json.dumps(trained.to_dict(), default=str))
    assert list(as_json) == ["pipeline", "parent_run_id", "metric", "table", "reference",
                             "best", "decision", "n_rows", "n_series", "dropped_series",
                             "quarantined", "quarantine_path", "validation_report",
                             "tracking_uri", "notes"]
    assert as_json["decision"]["promoted"] is True and as_json["tracking_uri"] == store
    from mlflow import MlflowClient  # evaluation.plots: false -- no PNG in any run

    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("api-plain").experiment_id])
    assert len(runs) == 4 and all(client.list_artifacts(r.info.run_id, "plots") == []
                                  for r in runs)

    # the champion, history from data.path, not written; the history passed the pandas
    # screen of the checks, so Great Expectations did not run (it does when one fails)
    result = deepcast.forecast(cfg, report=deepcast.ForecastReport(report_dir=tmp_path / "f"))
    assert json.loads((tmp_path / "f" / "validation.json").read_text())["checked_by"] \
        .startswith("deepcast screen")
    fc = result.forecast
    assert list(fc.columns) == FORECAST_COLUMNS and len(fc) == 6 * 6 == result.rows
    assert result.output is None and result.model_version == "1"
    assert "forecast" not in result.to_dict() and "report" not in result.to_dict()

    out = tmp_path / "out" / "f.csv"
    written = deepcast.forecast(cfg, "challenger", history=df, output=out)
    assert written.output == str(out) and written.model_uri == "models:/api-plain@challenger"
    pd.testing.assert_frame_equal(written.forecast.reset_index(drop=True), fc)
    assert len(pd.read_csv(out)) == 36


def test_errors_are_deepcasts_own(store, tmp_path, retail_csv):
    pipeline = write_pipeline(tmp_path, retail_csv, name="api-errors",
                              models=[{"type": "seasonal_naive"}])
    bad = pd.read_csv(retail_csv)
    bad.loc[3, "y"] = float("inf")
    assert not deepcast.validate(pipeline, bad).success  # a result, not an error
    with pytest.raises(deepcast.ValidationFailed, match="row 4"):
        deepcast.train(pipeline, bad)
    with pytest.raises(deepcast.ConfigError, match="no version 'champion'"):
        deepcast.forecast(pipeline)
    with pytest.raises(deepcast.ConfigError, match="orchestrator must be one of"):
        deepcast.train(pipeline, orchestrator="airflow")
    with pytest.raises(deepcast.ConfigError, match="invalid pipeline config <dict>"):
        deepcast.load_config({"name": "x"})
    with pytest.raises(deepcast.DataError, match="missing required column"):
        deepcast.validate(pipeline, bad.rename(columns={"y": "value"}))
    dask = pipeline_dict(retail_csv, name="api-dask", execution={"runner": "dask"})
    with pytest.raises(deepcast.ConfigError, match="orchestrator='prefect'"):
        deepcast.train(dask)


@pytest.mark.slow
def test_prefect_orchestrator_gives_the_same_results(prefect_harness, store, tmp_path,
                                                     retail_csv):
    cfg = deepcast.load_config(write_pipeline(tmp_path, retail_csv, name="api-both", **FAST))
    df = pd.read_csv(retail_csv)
    plain = deepcast.train(cfg, df)
    flowed = deepcast.train(cfg, df, orchestrator="prefect")
    assert isinstance(flowed, deepcast.TrainResult)
    assert _scores(flowed.table) == _scores(plain.table)
    assert (flowed.reference, flowed.best, flowed.n_rows) == (
        plain.reference, plain.best, plain.n_rows)

    a = deepcast.forecast(cfg, "1", history=df)
    b = deepcast.forecast(cfg, "1", history=df, orchestrator="prefect")
    assert a.to_dict() == b.to_dict()
    pd.testing.assert_frame_equal(a.forecast, b.forecast)
    # the frame went to the flow by reference: Prefect stored a placeholder, not its rows
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(
            name=FlowFilterName(any_=["batch-forecast"])))
    ours = [r for r in runs if "api-both" in r.name]  # the session's
    assert ours and all(r.parameters["data"] == "<InMemory>" for r in ours)  # server is shared


def test_tune_a_dict_config_writes_the_tuned_yaml_here(store, tmp_path, retail_csv):
    """A config with no YAML file: the tuned YAML is ./NAME.tuned.yaml, and it loads."""
    cfg = pipeline_dict(retail_csv, name="api-tune",
                        models=[{"type": "seasonal_naive"}, {"type": "mlp", "hidden_size": 8}],
                        training={"max_epochs": 2, "patience": 1, "batch_size": 64, "seed": 0},
                        tune={"model": "mlp", "sampler": "random", "trials": 2,
                              "space": {"hidden_size": {"choice": [8, 16]}}})
    result = deepcast.tune(cfg, trials=2)
    assert isinstance(result, deepcast.TuneResult) and len(result.trials) == 2
    assert result.output == "api-tune.tuned.yaml" and (tmp_path / result.output).is_file()
    tuned = deepcast.load_config(tmp_path / result.output)
    mlp = next(m for m in tuned.models if m.type == "mlp")
    assert mlp.hidden_size == result.best_params["hidden_size"] and tuned.tune is None
    # its header names where it came from, and the entry holds only what differs from the
    # family's defaults (before: a temporary file's name, and distribution_quantiles)
    text = (tmp_path / result.output).read_text()
    assert text.startswith("# tuned by `deepcast tune` from a config given in Python "
                           "(api-tune)\n")
    import yaml

    entry = next(m for m in yaml.safe_load(text)["models"] if m["type"] == "mlp")
    assert set(entry) <= {"type", "hidden_size"}, entry
    with pytest.raises(deepcast.ConfigError, match="trials must be >= 1"):
        deepcast.tune(cfg, trials=0)


def test_every_series_gets_a_forecast(store, retail_csv, tmp_path):
    """Series too short for the model (one cut short, one new since training, one with no
    observed value) are dropped from the model's input and forecast by the fallback:
    marked in the `fallback` column, counted, named in the notes, and can be chosen for
    the report's plots; `data.fallback: none` leaves them out, without the column, and
    choosing one for the report says why it has no forecast."""
    raw = pipeline_dict(retail_csv, name="api-fallback", models=[{"type": "seasonal_naive"}],
                        data={"path": str(retail_csv), "freq": "MS", "season_length": 12,
                              "short_series": "drop"})
    df = pd.read_csv(retail_csv)
    deepcast.train(raw, df)
    ids = sorted(df["unique_id"].unique())
    cut = df[df["unique_id"] != ids[0]]
    cut = pd.concat([cut, df[df["unique_id"] == ids[0]].tail(13)])  # 13 < lookback 24
    new = df[df["unique_id"] == ids[1]].tail(5).assign(unique_id="new-store")
    empty = new.assign(unique_id="no-values", y=float("nan"))
    html = tmp_path / "report.html"
    result = deepcast.forecast(raw, history=pd.concat([cut, new, empty]),
                               report=deepcast.ForecastReport(html=html, series=["new-store"]))
    # before: "--series: ... not in the data"; the report's history holds the rows each
    # fallback forecast came from: 5 validated series and the 2 forecast by the fallback
    assert "<dt>series</dt><dd>7 (" in html.read_text()
    fc = result.forecast
    assert result.fallback_series == 2 and result.series == 7 and result.rows == 7 * 6
    # fallback rows carry the served model's name (the first row is one of them)
    assert result.model_name == "seasonal_naive" and (fc["model_name"] == "seasonal_naive").all()
    marked = fc[fc["fallback"] != ""].groupby("unique_id")["fallback"].first().to_dict()
    assert marked == {ids[0]: "seasonal_naive", "new-store": "naive"}
    last_season = df[df["unique_id"] == ids[0]]["y"].tail(12).head(6).to_numpy()
    assert fc[fc["unique_id"] == ids[0]]["yhat"].tolist() == pytest.approx(last_season)
    assert (fc[fc["unique_id"] == "new-store"]["yhat"] == new["y"].iloc[-1]).all()
    assert any("2 series are shorter" in n for n in result.notes)
    assert any("no observed value" in n and "no-values" in n for n in result.notes)
    assert json.loads(json.dumps(result.to_dict()))["fallback_series"] == 2

    raw["data"]["fallback"] = "none"
    off = deepcast.forecast(raw, history=pd.concat([cut, new]))
    assert off.series == 5 and "fallback" not in off.forecast.columns
    assert off.fallback_series == 0 and not any("fallback" in n for n in off.notes)
    with pytest.raises(deepcast.ConfigError,  # in the API's terms, not --series
                       match=r"^ForecastReport\(series=\.\.\.\): new-store: too short"):
        deepcast.forecast(raw, history=pd.concat([cut, new]),
                          report=deepcast.ForecastReport(html=html, series=["new-store"]))
    raw["data"]["fallback"] = "seasonal_naive"  # a series with no observed value: no forecast
    with pytest.raises(deepcast.ConfigError, match="no-values: too short for the model"):
        deepcast.forecast(raw, history=pd.concat([cut, new, empty]),
                          report=deepcast.ForecastReport(html=html, series=["no-values"]))


def test_columns_renamed_in_the_yaml_after_training(store, retail_csv):
    """The YAML's column names say how to read the data; a model trained before the id,
    time or target column was renamed still forecasts it (it is handed the history under
    its own names), with the same forecast."""
    raw = pipeline_dict(retail_csv, name="api-renamed", models=[{"type": "seasonal_naive"}])
    df = pd.read_csv(retail_csv)
    deepcast.train(raw, df)
    before = deepcast.forecast(raw, history=df).forecast
    renamed = df.rename(columns={"unique_id": "store", "ds": "month", "y": "sales"})
    later = {**raw, "data": {**raw["data"], "id_col": "store", "time_col": "month",
                             "target_col": "sales"}}
    after = deepcast.forecast(later, history=renamed)
    assert after.series == 6 and after.rows == 6 * 6
    pd.testing.assert_frame_equal(after.forecast, before)

    # the gate re-scores that champion on today's holdout (here shorter than the horizon,
    # so not on cut-offs) under its own names too, and compares it with the candidate
    short = {**raw, "evaluation": {**raw["evaluation"], "test_size": 3}}
    deepcast.train(short, df)
    again = deepcast.train({**later, "evaluation": short["evaluation"],
                            "models": [{"type": "naive"}]}, renamed)
    assert again.decision.champion_score is not None, again.decision
    assert "re-scored on today's holdout" in " ".join(again.decision.notes)


def test_a_new_horizon_is_not_gated_on_the_old_champions_scores(store, retail_csv):
    """The champion forecasts 6 steps, the pipeline now 3: its score (on the holdout, over
    6 steps) and the candidate's (on cut-offs, over 3) measure different things, and it
    cannot serve the new horizon. Before, the gate compared them (a trial: promoted on
    'beats champion' between two identical seasonal naive models). The candidate now
    passes on seasonal naive's bar alone, and the decision says whom it replaces."""
    raw = pipeline_dict(retail_csv, name="api-horizon", models=[{"type": "seasonal_naive"}])
    df = pd.read_csv(retail_csv)
    assert deepcast.train(raw, df).decision.promoted
    three = {**raw, "features": {**raw["features"], "horizon": 3}}
    decision = deepcast.train(three, df).decision
    assert decision.promoted and decision.champion_score is None, decision
    assert decision.reason.startswith("beats seasonal naive and replaces champion v1 "
                                      "(champion v1 forecasts 6 steps and this pipeline 3")
    assert deepcast.forecast(three, history=df).rows == 6 * 3


def test_the_datas_warnings_reach_the_train_notes(store, retail_csv):
    """A stale series (issue 16: warned by validate, train and forecast) was only in
    validation.json for train; its warning is now among the train result's notes."""
    df = pd.read_csv(retail_csv)
    stale = df["unique_id"].iloc[0]
    df = df.drop(df.index[df["unique_id"] == stale][-24:])
    raw = pipeline_dict(retail_csv, name="api-stale", models=[{"type": "seasonal_naive"}])
    notes = deepcast.train(raw, df).notes
    assert any(n.startswith("1 of 6 series end more than") and stale in n for n in notes), \
        notes
