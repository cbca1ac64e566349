"""What every job is made of: the :class:`Steps` a stage call goes through, the
:class:`RunInputs` a job reads, the config from a path or a dict, and the two first steps
of most jobs (ingest, validate)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pandas as pd

from deepcast.features.errors import ConfigError, DataError, ValidationFailed
from deepcast.pipelines.config import DataConfig, PipelineConfig, load_config, parse_config
from deepcast.pipelines.ingest import cut_at, parse_as_of
from deepcast.pipelines.tracking import tags as tag

if TYPE_CHECKING:
    from deepcast.pipelines.results import RetrainResult
    from deepcast.pipelines.runs.pools import ShardPool

T = TypeVar("T")
Mapper = Callable[[Callable[[Any], Any], list], list]
FRAME_SOURCE = "DataFrame"  # how reports and run tags name data given in memory


class Steps(Protocol):
    """How a job runs its steps: each stage call is named, so an orchestrator can run it
    as a task of that name."""

    def run(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A computing step: ``fn(*args, **kwargs)``, never retried."""
        ...

    def io(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A step that reads or writes: an orchestrator may retry unexpected failures."""
        ...

    def mapper(self, cfg: PipelineConfig) -> Mapper | None:
        """How the fits of a stage are spread (``cfg.execution``); None: in this process."""
        ...

    def publish(self, cfg: PipelineConfig, result: RetrainResult) -> list[str]:
        """Show a retrain's record where the orchestrator shows runs; the keys."""
        ...

    def pool(self, cfg: PipelineConfig) -> AbstractContextManager[ShardPool]:
        """Where a run's prepared shards live (``cfg.execution``): a Dask cluster's
        workers, or this process (:mod:`.train_shards`)."""
        ...


class PlainSteps:
    """Steps as plain function calls in this process (no orchestrator)."""

    def run(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)

    def io(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)

    def mapper(self, cfg: PipelineConfig) -> Mapper | None:
        if cfg.execution.runner == "serial":
            return None
        raise ConfigError(f"execution.runner {cfg.execution.runner!r} fans the fits out as "
                          "Prefect tasks, and this run has no orchestrator",
                          hint="pass orchestrator='prefect' (as the CLI does), or set "
                          "execution.runner: serial")

    def publish(self, cfg: PipelineConfig, result: RetrainResult) -> list[str]:
        return []

    def pool(self, cfg: PipelineConfig) -> AbstractContextManager[ShardPool]:
        from deepcast.pipelines.runs.pools import InProcessPool

        if cfg.execution.runner == "serial":
            return contextlib.nullcontext(InProcessPool())
        raise ConfigError(f"execution.runner {cfg.execution.runner!r} keeps the shards in "
                          "Dask workers the orchestrator starts, and this run has none",
                          hint="pass orchestrator='prefect' (as the CLI does), or set "
                          "execution.runner: serial")


PLAIN = PlainSteps()


@dataclass(frozen=True)
class RunInputs:
    """What a job reads besides its config: ``data`` is a frame in memory, a data file
    to read instead of ``data.path``, or None (the config's ``data.path`` / ``data.sql``);
    ``report_dir`` is the validation report's folder (default
    ./mlruns/validation/NAME/STAMP); ``pipeline_file`` the YAML the config came from."""

    data: pd.DataFrame | str | None = None
    report_dir: str | None = None
    pipeline_file: str | None = None

    @property
    def in_memory(self) -> bool:
        return isinstance(self.data, pd.DataFrame)

    def source(self, cfg: PipelineConfig) -> str | None:
        """The data file read: ``data`` or ``data.path``; None for a frame or ``data.sql``."""
        if self.in_memory:
            return None
        if self.data is not None:
            return str(self.data)
        return str(cfg.data.path) if cfg.data.path is not None else None

    def given(self, cfg: PipelineConfig) -> pd.DataFrame | str | None:
        """What the ingest step reads: the frame, else the data file (None: ``data.sql``)."""
        return self.data if self.in_memory else self.source(cfg)

    def label(self, cfg: PipelineConfig) -> str:
        """Where the data came from, for run tags (never a database URL)."""
        return FRAME_SOURCE if self.in_memory else self.source(cfg) or cfg.data.source


FROM_CONFIG = RunInputs()  # the config's data.path / data.sql, the default report folder


def config_of(source: str | os.PathLike | Mapping[str, Any] | PipelineConfig
              ) -> tuple[PipelineConfig, str | None]:
    """(config, the YAML file it was read from or None) of a YAML path, a mapping (relative
    paths resolved against the working directory) or a config; ConfigError otherwise."""
    if isinstance(source, PipelineConfig):
        return source, None
    if isinstance(source, Mapping):
        return parse_config(dict(source), source="<dict>", base_dir=Path.cwd()), None
    if isinstance(source, str | os.PathLike):
        return load_config(source), str(source)
    raise ConfigError(f"a pipeline config is a YAML file path, a dict or a PipelineConfig; "
                      f"got {type(source).__name__}",
                      hint="e.g. deepcast.load_config('pipelines/demo.yaml')")


def preload(validation: bool = True) -> None:
    """Import what a run needs (Keras with deepcast's layers, MLflow's pyfunc, and Great
    Expectations when ``validation`` runs its suite), e.g. while Prefect's server starts;
    one that fails is left for the run to report."""
    with contextlib.suppress(Exception):
        import deepcast.forecasting.layers  # noqa: F401  Keras, TensorFlow
    with contextlib.suppress(Exception):
        import deepcast.pipelines.tracking  # noqa: F401  MLflow and its pyfunc flavour
    if validation:
        with contextlib.suppress(Exception):
            import great_expectations  # noqa: F401  used by the validation stage


# ---- steps ---------------------------------------------------------------------------

def read_data(data: DataConfig, given: pd.DataFrame | str | None) -> pd.DataFrame:
    """The coerced long frame (with row flags) of a frame in memory, else of a data file
    (default ``data.path``), else of the ``data.sql`` query."""
    from deepcast.pipelines.ingest import ingest

    if not isinstance(given, pd.DataFrame):
        return ingest(data, given)
    return _coerced(data, given)


def read_future(data: DataConfig, given: pd.DataFrame | str) -> pd.DataFrame:
    """Future covariates (id, time and the future columns; the target may be absent) of a
    frame in memory or a file, coerced with an empty target."""
    from deepcast.pipelines.ingest import ingest_future

    if not isinstance(given, pd.DataFrame):
        return ingest_future(data, given)
    if data.target_col not in given.columns:
        given = given.assign(**{data.target_col: float("nan")})
    return _coerced(data, given)


def _coerced(data: DataConfig, frame: pd.DataFrame) -> pd.DataFrame:
    from deepcast.features.schema import coerce_long_frame
    from deepcast.pipelines.ingest import column_spec

    if frame.empty:
        raise DataError(f"the {FRAME_SOURCE} has no rows (columns: "
                        f"{', '.join(map(str, frame.columns))})", hint="pass the data's rows")
    df = coerce_long_frame(frame, column_spec(data), source=FRAME_SOURCE)
    df.attrs["source"] = FRAME_SOURCE
    return df


def checked(raw: pd.DataFrame, cfg: PipelineConfig, report_dir: Path,
            min_length: int | None = None, screen_first: bool = False, panel: bool = True
            ) -> tuple[pd.DataFrame, Any]:
    """Validate; :class:`ValidationFailed` (exit 3, the report's summary) stops the job.
    ``screen_first``, ``panel``: see :func:`~deepcast.pipelines.validate.validate_long_frame`."""
    from deepcast.pipelines.validate import validate_long_frame

    clean, report = validate_long_frame(raw, cfg, report_dir, min_length=min_length,
                                        screen_first=screen_first, panel=panel)
    if not report.success:
        raise ValidationFailed(report)
    return clean, report


def report_dir(cfg: PipelineConfig, inputs: RunInputs) -> Path:
    """The validation report's folder of this run."""
    from deepcast.pipelines.validate import report_dir_for

    return report_dir_for(cfg, inputs.report_dir)


@dataclass(frozen=True)
class Validated:
    """Ingested rows (``raw``), the validated frame (``clean``), the report and the config
    the later stages read (``cfg``: ``data.freq: auto`` resolved by validation)."""

    raw: pd.DataFrame
    clean: pd.DataFrame
    report: Any
    cfg: PipelineConfig


def validated(cfg: PipelineConfig, inputs: RunInputs, steps: Steps,
              as_of: str | None = None) -> Validated:
    """Ingest (rows up to ``as_of`` when given) and validate; bad data stops the job."""
    raw = cut_at(steps.io("ingest", read_data, cfg.data, inputs.given(cfg)),
                 parse_as_of(as_of, cfg.data))
    from deepcast.pipelines.levels import with_levels
    from deepcast.pipelines.validate import resolved_config

    clean, report = steps.run("validate", checked, raw, cfg, report_dir(cfg, inputs))
    return Validated(raw, with_levels(clean, cfg), report, resolved_config(cfg, report))


def run_tags(cfg: PipelineConfig, stage: str, inputs: RunInputs, data_sha: str
             ) -> dict[str, str]:
    """Tags of a parent run: which pipeline, stage and data (never a database URL)."""
    return {tag.PIPELINE: cfg.name, tag.STAGE: stage, tag.DATA_PATH: inputs.label(cfg),
            tag.DATA_SHA256: data_sha}
