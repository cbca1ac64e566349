"""``deepcast validate`` shard by shard, on Dask workers: each shard of whole series is read
(from a Parquet file or dataset, or the ``data.sql`` query filtered to its series) and put
through the cleaning and the GE suite in a worker; the driver holds only the shard plan (one
row count per series) and the shards' reports and last dates, and merges them exactly into
one report (:mod:`deepcast.pipelines.validation.merge`): counts summed, the first examples
per check naming their shard, one quarantine file, stale series judged against the whole
panel's latest date.

Used when ``execution.runner`` is ``dask`` and the data is a Parquet source or a query (a
CSV or a frame in memory is read whole, as with the serial runner). The validated rows stay
in the workers: the result has no ``clean`` frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.features.errors import DataError, ValidationFailed
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.results import ValidationResult
from deepcast.pipelines.runs.base import RunInputs, Steps, report_dir
from deepcast.pipelines.shards import Shard


@dataclass(frozen=True)
class ValidateJob:
    """One shard's validation: its rows' source (None: ``data.sql``) and report folder."""

    cfg: PipelineConfig
    shard: Shard
    source: str | None
    report_dir: str

    @property
    def label(self) -> str:  # the task run's name
        return self.shard.label


@dataclass(frozen=True)
class ValidateOutcome:
    """What a worker sends back: the shard's report and each series' last validated ds."""

    report: Any
    last_ds: pd.Series


def sharded(cfg: PipelineConfig, inputs: RunInputs) -> bool:
    """Whether ``validate`` runs shard by shard: on Dask, from Parquet or a query."""
    from deepcast.pipelines.parquet_dataset import is_parquet

    if cfg.execution.runner != "dask" or inputs.in_memory:
        return False
    source = inputs.source(cfg)
    return cfg.data.sql is not None if source is None else is_parquet(source)


def validate_shard(job: ValidateJob) -> ValidateOutcome:
    """Read and validate one shard (run in a worker); Data Docs only for a failing shard."""
    from deepcast.features.schema import DS, ID
    from deepcast.pipelines.runs.forecast_shards import read_rows
    from deepcast.pipelines.validate import validate_long_frame

    raw = read_rows(job.cfg, job.shard, job.source)
    where = Path(job.report_dir) / f"shard-{job.shard.index:05d}"
    clean, report = validate_long_frame(raw, job.cfg, where, panel=False)
    return ValidateOutcome(report, clean.groupby(ID, sort=True)[DS].max())


def check_one_freq(reports: list[Any]) -> None:
    """A DataError when the shards' validation found different frequencies."""
    freqs = sorted({str(r.freq) for r in reports if r.freq is not None})
    if len(freqs) > 1:
        raise DataError(f"the shards' series have different frequencies ({', '.join(freqs)})",
                        hint="set data.freq to the panel's step (or validate the "
                        "series of each frequency as their own pipeline)")


def validate_in_shards(cfg: PipelineConfig, inputs: RunInputs, steps: Steps
                       ) -> ValidationResult:
    """The merged report of every shard's validation (bad data is a result, as in
    ``validate``); a DataError when the shards found different frequencies."""
    from deepcast.pipelines.runs.forecast_shards import merged_report, plan

    shards = steps.io("plan-shards", plan, cfg, inputs, cfg.data.id_col)
    where = report_dir(cfg, inputs)
    jobs = [ValidateJob(cfg, s, inputs.source(cfg), str(where)) for s in shards]
    outcomes = steps.mapper(cfg)(validate_shard, jobs)
    check_one_freq([o.report for o in outcomes])
    try:
        report = merged_report(cfg, outcomes, [s.label for s in shards], where,
                               inputs.label(cfg), whole_panel=True)
    except ValidationFailed as exc:
        report = exc.report
    return ValidationResult(report)
