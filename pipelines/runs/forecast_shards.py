"""The batch forecast into a folder, shard by shard: each shard of whole series is read
(from a Parquet dataset, or the ``data.sql`` query filtered to its series in the database),
validated, forecast and written as one Parquet file by a worker (a Dask worker process under
``execution.runner: dask``, else this process); the driver holds only the shard plan and
the shards' summaries, merges their validation reports exactly and commits the folder
atomically (:mod:`deepcast.pipelines.forecast_folder`).

Every worker forecasts with the version the driver resolved (an alias moved mid-run changes
nothing) and loads it once per process. A shard's file is written atomically under its
fixed name, so a shard re-run after its worker died (Dask reschedules it) replaces its own
file: no row is lost or doubled. Each series is forecast from its own rows only, so the
folder holds exactly the rows a forecast into one file would.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.features.errors import ConfigError, ValidationFailed
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.results import ForecastResult
from deepcast.pipelines.runs import store
from deepcast.pipelines.runs.base import PLAIN, RunInputs, Steps, report_dir
from deepcast.pipelines.shards import Shard


@dataclass(frozen=True)
class ShardJob:
    """One shard's forecast: where its rows are (``source``, a Parquet file or dataset;
    ``frame``, its rows in memory, already coerced when ``coerced``; neither: the
    ``data.sql`` query, filtered to the shard's series), the version to
    forecast with, and where its file and validation report go."""

    cfg: PipelineConfig
    shard: Shard
    source: str | None
    frame: pd.DataFrame | None
    coerced: bool
    model_version: str
    future: pd.DataFrame | str | None
    staging: str
    report_dir: str

    @property
    def label(self) -> str:
        return self.shard.label


@dataclass(frozen=True)
class ShardOutcome:
    """What a worker sends back: its file (None when validation failed), counts, its
    validation report, each series' last validated ds (for the panel's stale check), the
    notes of its fallback, and what it held that training did not (categories, series:
    ``CovariateEncoder.unseen``, merged by the driver)."""

    index: int
    part: str | None
    rows: int
    series: int
    report: Any
    last_ds: pd.Series
    fallback_series: int
    notes: tuple[str, ...]
    model_name: str
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)


_MODELS: dict[tuple[str, str, str], Any] = {}  # (store, name, version) -> loaded, per process


def forecast_shard(job: ShardJob) -> ShardOutcome:
    """Read, validate, forecast and write one shard (run in a worker)."""
    from deepcast.features.schema import DS, ID
    from deepcast.pipelines.fallback import with_fallback
    from deepcast.pipelines.forecast import finish_forecast, write_atomic
    from deepcast.pipelines.forecast_folder import PART
    from deepcast.pipelines.runs.forecast_steps import (
        ForecastRequest,
        fallback_of,
        history_of,
        predict_series,
    )

    cfg, shard = job.cfg, job.shard
    ref, model = _model(cfg, job.model_version)
    raw = _rows(job)
    inputs = RunInputs(report_dir=str(Path(job.report_dir) / f"shard-{shard.index:05d}"))
    request = ForecastRequest(model=job.model_version, future=_future(job))
    try:
        history, clean, validation = history_of(cfg, inputs, request, PLAIN, raw,
                                                model.predictor, panel=False)
    except ValidationFailed as exc:
        return ShardOutcome(shard.index, None, 0, 0, exc.report, pd.Series(dtype=object),
                            0, (), "")
    fc = predict_series(model, history, model.predictor.columns.id_col)
    fallback = fallback_of(cfg, raw, validation.dropped_series, model.predictor)
    fc = finish_forecast(with_fallback(fc, fallback, model.predictor.name),
                         ref.version, ref.run_id)
    part = PART.format(shard.index)
    write_atomic(fc, Path(job.staging) / part)
    last = clean.groupby(ID, sort=True)[DS].max()
    notes = tuple(fallback.notes(model.predictor.min_history)) if fallback else ()
    encoder = model.predictor.encoder
    return ShardOutcome(shard.index, part, len(fc), int(fc["unique_id"].nunique()),
                        validation, last, fallback.n_series if fallback else 0, notes,
                        str(fc["model_name"].iloc[0]) if len(fc) else "",
                        encoder.unseen(clean) if encoder is not None else {})


def forecast_folder(cfg: PipelineConfig, inputs: RunInputs, request: Any,
                    steps: Steps = PLAIN, raw: pd.DataFrame | None = None) -> ForecastResult:
    """The forecast of every shard into the folder ``request.output``, committed
    atomically; bad data in any shard stops the run (nothing committed) with the merged
    report naming the shards. ``raw``: the rows already ingested (``retrain``), sharded
    in memory instead of read again."""
    from deepcast.pipelines import forecast_folder as folder

    out = check_folder_output(cfg, request.output, request.options.report)
    tracker = store.open_tracker(cfg)
    ref, model = steps.io("load-model", store.load_model, tracker, request.model)
    _MODELS[_key(cfg, str(ref.version))] = (ref, model)
    label = inputs.label(cfg)
    if raw is not None:
        inputs = RunInputs(data=raw, report_dir=inputs.report_dir,
                           pipeline_file=inputs.pipeline_file)
    id_col = "unique_id" if raw is not None else cfg.data.id_col
    shards = steps.io("plan-shards", plan, cfg, inputs, id_col)
    staging = folder.staging_folder(out)
    try:
        where = report_dir(cfg, inputs)
        jobs = [ShardJob(cfg, s, _source(cfg, inputs), shard_slice(inputs, id_col, s),
                         raw is not None, str(ref.version), request.future, str(staging),
                         str(where)) for s in shards]
        mapper = steps.mapper(cfg)
        outcomes = mapper(forecast_shard, jobs) if mapper else [forecast_shard(j) for j in jobs]
        validation = merged_report(cfg, outcomes, [j.label for j in jobs], where, label)
        manifest = _manifest(cfg, ref, outcomes, shards)
        folder.write_manifest(staging, manifest)
        steps.io("commit-forecast", folder.commit, staging, out)
    finally:
        folder.discard(staging)
    encoder = model.predictor.encoder
    unseen = encoder.unseen_notes(encoder.merge_unseen([o.unseen for o in outcomes])) \
        if encoder is not None else []
    notes = [*validation.warnings, *dict.fromkeys(n for o in outcomes for n in o.notes),
             *model.predictor.conformal_notes, *unseen]
    return ForecastResult(
        pipeline=cfg.name, model_uri=f"models:/{cfg.name}@{request.model}"
        if not str(request.model).isdigit() else ref.uri,
        model_name=manifest["model_name"], model_version=str(ref.version), run_id=ref.run_id,
        output=str(out), rows=manifest["rows"], series=manifest["series"],
        dropped_series=validation.dropped_series, forecast=None, notes=notes,
        fallback_series=sum(o.fallback_series for o in outcomes))


def check_folder_output(cfg: PipelineConfig, output: str, report: Any = None) -> Path:
    """The output folder (``output`` asks for one), after the checks a folder forecast needs:
    no report, no hierarchy, a folder deepcast may replace. Called before any work by the
    run, and by ``forecast`` and ``retrain`` before their flows start (a retrain would
    otherwise train every model first)."""
    from deepcast.pipelines.forecast_folder import check_folder

    if report:
        raise ConfigError("--report needs the whole forecast in one process; a forecast into "
                          "a folder is written shard by shard",
                          hint="drop --report, or give --output a .csv/.parquet file name")
    if cfg.hierarchy is not None:
        raise ConfigError("a hierarchy is reconciled across all its series at once; a "
                          "forecast into a folder is written shard by shard",
                          hint="give --output a .csv/.parquet file name")
    return check_folder(output)


def plan(cfg: PipelineConfig, inputs: RunInputs, id_col: str) -> list[Shard]:
    """The shards of the run's data: of the frame in memory, the Parquet source or the
    ``data.sql`` query."""
    from deepcast.features.errors import DataError
    from deepcast.pipelines.shards import plan_frame, plan_source

    target = cfg.execution.shard_rows
    if inputs.in_memory:
        if id_col not in inputs.data.columns or inputs.data.empty:
            raise DataError(f"the data frame has no rows or no column {id_col!r}",
                            hint="pass the history in long format (data.id_col)")
        return plan_frame(inputs.data, id_col, target)
    source = _source(cfg, inputs)
    if source is None:  # data.sql: the database counts the rows per series
        cfg.data.require_source()  # (or no source at all: named, exit 2)
        from deepcast.pipelines.sql import plan_query

        sql = cfg.data.sql
        return plan_query(sql.query, cfg.data.id_col, target, sql.url_env)
    return plan_source(source, cfg.data.id_col, target)


def _source(cfg: PipelineConfig, inputs: RunInputs) -> str | None:
    return None if inputs.in_memory else inputs.source(cfg)


def shard_slice(inputs: RunInputs, id_col: str, shard: Shard) -> pd.DataFrame | None:
    if not inputs.in_memory:
        return None
    frame = inputs.data
    mine = frame[id_col].isin(shard.ids)
    return frame[mine | frame[id_col].isna()] if shard.nulls else frame[mine]


def _rows(job: ShardJob) -> pd.DataFrame:
    """The shard's coerced rows (from its slice in memory, or read from the source)."""
    from deepcast.pipelines.runs.base import _coerced

    if job.frame is not None:
        return job.frame if job.coerced else _coerced(job.cfg.data, job.frame)
    return read_rows(job.cfg, job.shard, job.source)


def read_rows(cfg: PipelineConfig, shard: Shard, source: str | None) -> pd.DataFrame:
    """A shard's coerced rows, read from ``source`` (a Parquet file or dataset; None: the
    ``data.sql`` query, filtered to the shard's series in the database)."""
    from deepcast.features.schema import coerce_long_frame
    from deepcast.pipelines.ingest import column_spec, declared_columns
    from deepcast.pipelines.shards import read_shard

    data = cfg.data
    if source is None:
        from deepcast.pipelines.sql import read_query_shard

        raw = read_query_shard(data.sql.query, shard, data.id_col, data.sql.url_env)
        where = f"data.sql ({shard.label})"
    else:
        raw = read_shard(source, shard, data.id_col, declared_columns(data))
        where = f"{source} ({shard.label})"
    df = coerce_long_frame(raw, column_spec(data), source=where)
    df.attrs["source"] = where
    return df


def _future(job: ShardJob) -> pd.DataFrame | None:
    """The shard's future covariates (from --future), or None."""
    from deepcast.pipelines.runs.base import read_future

    if job.future is None:
        return None
    future = read_future(job.cfg.data, job.future)
    return future[future["unique_id"].isin([str(i) for i in job.shard.ids])]


def _model(cfg: PipelineConfig, version: str) -> Any:
    key = _key(cfg, version)
    if key not in _MODELS:
        _MODELS.clear()  # one model per process: tonight's
        _MODELS[key] = store.load_model(store.open_tracker(cfg), version)
    return _MODELS[key]


def _key(cfg: PipelineConfig, version: str) -> tuple[str, str, str]:
    from deepcast.pipelines.tracking.store import tracking_uri

    return tracking_uri(), cfg.name, version


def merged_report(cfg: PipelineConfig, outcomes: list[Any], labels: list[str],
                  where: Path, source: str, whole_panel: bool = False) -> Any:
    """The merged report of the shards' ``outcomes`` (each with its ``report`` and the
    ``last_ds`` of its series), written as the run's validation.json; ValidationFailed
    when it failed (``whole_panel``: see :func:`merge_reports`)."""
    from deepcast.features.schema import DS, ID
    from deepcast.pipelines.validate import stale_check
    from deepcast.pipelines.validation.merge import merge_quarantine, merge_reports
    from deepcast.pipelines.validation.writers import REPORT_FILE, write_json

    reports = [o.report for o in outcomes]
    merged = merge_reports(reports, labels, source, whole_panel)
    # the failing shards' Data Docs (with data_docs: always, passing shards have some too)
    docs = [r.docs_path for r in reports if r.docs_path and not r.success] \
        or [r.docs_path for r in reports if r.docs_path]
    merged.docs_path = docs[0] if docs else None
    if len(docs) > 1 and not merged.success:
        merged.notes.append("Data Docs of the other failing shards: " + ", ".join(docs[1:6])
                            + (f" and {len(docs) - 6} more" if len(docs) > 6 else ""))
    merged.quarantine_path = merge_quarantine([r.quarantine_path for r in reports], labels,
                                              where)
    last = pd.concat([o.last_ds for o in outcomes if len(o.last_ds)])
    if len(last):
        ends = pd.DataFrame({ID: last.index.astype(str), DS: last.to_numpy()})
        freq = merged.freq if merged.freq is not None else cfg.data.freq
        stale_check(merged, ends.sort_values(ID, kind="stable"), cfg.with_freq(freq))
    where.mkdir(parents=True, exist_ok=True)
    merged.report_path = str((where / REPORT_FILE).resolve())
    write_json(where / REPORT_FILE, merged.to_dict())
    if not merged.success:
        raise ValidationFailed(merged)
    return merged


def _manifest(cfg: PipelineConfig, ref: Any, outcomes: list[ShardOutcome],
              shards: list[Shard]) -> dict[str, Any]:
    parts = [{"file": o.part, "rows": o.rows, "series": o.series} for o in outcomes]
    from deepcast.pipelines.forecast_folder import WRITER

    return {"writer": WRITER, "pipeline": cfg.name,
            "model_name": next((o.model_name for o in outcomes
                                                      if o.model_name), ""),
            "model_version": str(ref.version), "run_id": ref.run_id,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "shards": len(shards), "rows": sum(p["rows"] for p in parts),
            "series": sum(p["series"] for p in parts), "parts": parts}
