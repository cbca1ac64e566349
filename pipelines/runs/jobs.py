"""The jobs that end in a tracked run: validate, train (and promote), backtest, tune.

Each takes a config, its :class:`~deepcast.pipelines.runs.base.RunInputs` and the
:class:`~deepcast.pipelines.runs.base.Steps` to run its stages through (plain calls by
default), and returns a typed result. Stage modules are imported when a job runs, so
validating data never loads TensorFlow.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.ingest import file_sha256, frame_sha256
from deepcast.pipelines.results import BacktestResult, TrainResult, TuneResult, ValidationResult
from deepcast.pipelines.runs import store
from deepcast.pipelines.runs.base import (
    FROM_CONFIG,
    PLAIN,
    Mapper,
    RunInputs,
    Steps,
    Validated,
    read_data,
    report_dir,
    run_tags,
    validated,
)
from deepcast.pipelines.tracking import tags as tag


def validate(cfg: PipelineConfig, inputs: RunInputs = FROM_CONFIG, steps: Steps = PLAIN
             ) -> ValidationResult:
    """Ingest and validate, with the report's JSON and Data Docs HTML; bad data is a
    result (``success`` False), not an error. On Dask, a Parquet source or a query is
    validated shard by shard in the workers (:mod:`.validate_shards`)."""
    from deepcast.pipelines.runs.validate_shards import sharded, validate_in_shards
    from deepcast.pipelines.validate import validate_long_frame

    if sharded(cfg, inputs):
        return validate_in_shards(cfg, inputs, steps)

    raw = steps.io("ingest", read_data, cfg.data, inputs.given(cfg))
    clean, report = steps.run("validate", validate_long_frame, raw, cfg,
                              report_dir(cfg, inputs), data_docs=True)
    return ValidationResult(report, clean)


def train(cfg: PipelineConfig, inputs: RunInputs = FROM_CONFIG, steps: Steps = PLAIN
          ) -> TrainResult:
    """Ingest -> validate -> train every model -> track -> promote through the gate; on
    Dask from a Parquet dataset or a query with ``training.windows_per_epoch``, shard by
    shard in the workers (:mod:`.train_from_shards`)."""
    from deepcast.pipelines.runs.train_from_shards import train_from_shards, trains_in_shards

    if trains_in_shards(cfg, inputs):
        return train_from_shards(cfg, inputs, steps)
    mapper = steps.mapper(cfg)
    return train_and_promote(cfg, inputs, validated(cfg, inputs, steps), steps, mapper)


def train_and_promote(cfg: PipelineConfig, inputs: RunInputs, data: Validated, steps: Steps,
                      mapper: Mapper | None = None) -> TrainResult:
    """The train run on validated data: train every model (through ``mapper``), save the
    drift reference profile with them, promote through the gate. Reads ``data.cfg`` (the
    config as validated: ``data.freq: auto`` resolved) instead of ``cfg``. A failure after
    the candidate is registered leaves the registry's aliases as they were."""
    from deepcast.pipelines.promote import promote
    from deepcast.pipelines.train import train_models

    cfg = data.cfg
    tracker = store.open_tracker(cfg)
    data_sha = frame_sha256(data.clean)
    source = inputs.source(cfg)
    tags = {**run_tags(cfg, "train", inputs, data_sha),
            tag.PIPELINE_FILE: str(Path(inputs.pipeline_file)) if inputs.pipeline_file else "",
            tag.FILE_SHA256: file_sha256(source) if source else ""}
    with store.aliases_kept_on_failure(tracker, "train") as decided, \
            store.parent_run(tracker, cfg, "train", tags) as parent_id:
        store.log_train_data(tracker, cfg, data.raw, data.clean, data.report)
        outcome = steps.run("train-models", train_models, data.clean, cfg, tracker,
                            data_sha256=data_sha, mapper=mapper, source=inputs.label(cfg))
        # what the reader should know: the data's warnings (stale series, filled-in
        # values, rows left out), then what the scores rest on
        notes = [*data.report.warnings, *outcome.notes()]
        store.describe_run(tracker, outcome.table(), cfg.evaluation.metric, notes)
        steps.io("save-reference-profile", store.save_profile, tracker, outcome, data.raw,
                 cfg)
        decision = steps.run("promote", promote, outcome, data.clean, cfg, tracker)
        decided.append(decision)  # from here on, a failure restores the aliases
    report = data.report
    return TrainResult(
        pipeline=cfg.name, parent_run_id=parent_id, metric=cfg.evaluation.metric,
        table=outcome.table().to_dict(orient="records"), reference=outcome.reference,
        best=outcome.best.name, decision=decision, n_rows=len(data.clean),
        n_series=outcome.n_series, dropped_series=report.dropped_series,
        quarantined=report.quarantined, quarantine_path=report.quarantine_path,
        validation_report=report.report_path, tracking_uri=store.store_uri(tracker),
        notes=notes)


def backtest(cfg: PipelineConfig, inputs: RunInputs = FROM_CONFIG, steps: Steps = PLAIN
             ) -> BacktestResult:
    """Ingest -> validate -> rolling-origin backtest of every model -> track; from shards
    on the terms ``train`` trains from them (:mod:`.backtest_shards`)."""
    from deepcast.pipelines.backtest import run_backtest, summary_notes, summary_records
    from deepcast.pipelines.runs.backtest_shards import backtest_from_shards
    from deepcast.pipelines.runs.train_from_shards import trains_in_shards

    if trains_in_shards(cfg, inputs) and cfg.evaluation.backtest.refit is False:
        return backtest_from_shards(cfg, inputs, steps)
    mapper = steps.mapper(cfg)
    data = validated(cfg, inputs, steps)
    cfg = data.cfg
    tracker = store.open_tracker(cfg)
    tags = run_tags(cfg, "backtest", inputs, frame_sha256(data.clean))
    with store.parent_run(tracker, cfg, "backtest", tags) as parent_id:
        datasets = store.log_datasets(tracker, data.clean, cfg, inputs.label(cfg),
                                      tags[tag.DATA_SHA256])
        scores = steps.run("backtest", run_backtest, data.clean, cfg, tracker, mapper)
        store.link_datasets(tracker, datasets, parent_id)
        store.log_metrics(tracker, {"backtest_seconds": scores.seconds})
    bt = cfg.evaluation.backtest
    return BacktestResult(
        pipeline=cfg.name, parent_run_id=parent_id, metric=cfg.evaluation.metric,
        n_windows=scores.n_windows, step=cfg.lengths.step, refit=bt.refit,
        table=summary_records(scores), seconds=round(scores.seconds, 2),
        n_series=int(data.clean["unique_id"].nunique()),
        dropped_series=data.report.dropped_series, tracking_uri=store.store_uri(tracker),
        skipped=scores.skipped, notes=[*data.report.warnings, *summary_notes(scores)])


def tune(cfg: PipelineConfig, inputs: RunInputs = FROM_CONFIG, trials: int | None = None,
         output: str | None = None, steps: Steps = PLAIN) -> TuneResult:
    """Ingest -> validate -> hyperparameter search (a nested run per trial) -> the tuned
    YAML: ``output``, else PIPELINE.tuned.yaml beside the YAML (./NAME.tuned.yaml for a
    config that came from no file)."""
    from deepcast.pipelines.tune import run_tune

    data = validated(cfg, inputs, steps)
    cfg = data.cfg
    tracker = store.open_tracker(cfg)
    tags = run_tags(cfg, "tune", inputs, frame_sha256(data.clean))
    if output is None and inputs.pipeline_file is None:
        output = f"{cfg.name}.tuned.yaml"
    with store.parent_run(tracker, cfg, "tune", tags) as parent_id, \
            _source_yaml(cfg, inputs.pipeline_file) as source_yaml:
        origin = None if inputs.pipeline_file else f"a config given in Python ({cfg.name})"
        result = steps.run("tune", run_tune, data.clean, cfg, source_yaml, tracker, trials,
                           output, origin)
    return TuneResult(
        pipeline=cfg.name, parent_run_id=parent_id,
        model=cfg.tune.model if cfg.tune else "", sampler=cfg.tune.sampler if cfg.tune else "",
        trials=result.trials.to_dict(orient="records"), best_params=result.best_params,
        best_val_loss=result.best_value, output=result.output,
        seconds=round(result.seconds, 2), tracking_uri=store.store_uri(tracker))


@contextlib.contextmanager
def _source_yaml(cfg: PipelineConfig, pipeline_file: str | None) -> Iterator[Path]:
    """The YAML the tuned one is derived from: the pipeline's file, else the config
    written out as ``NAME.yaml`` in a temporary folder."""
    if pipeline_file is not None:
        yield Path(pipeline_file)
        return
    import yaml

    from deepcast.pipelines.config import resolved_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{cfg.name}.yaml"
        path.write_text(yaml.safe_dump(resolved_config(cfg), sort_keys=False),
                        encoding="utf-8")
        yield path
