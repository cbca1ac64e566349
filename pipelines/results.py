"""Typed results of the runs: what ``train``, ``backtest``, ``tune``, ``forecast``,
``retrain`` and ``validate`` return, whether they ran as plain function calls or as Prefect
flows.

Each result is a frozen dataclass read by attribute; its one :meth:`to_dict` is the
command's ``--json`` output (the same keys, in the same order, as before the results were
typed). Frames a caller may want in Python (the forecast, the validated data) ride along
on the result but are never part of ``to_dict``. Nothing heavy is imported here: the
stage types named in the fields are for type checkers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from deepcast.pipelines.drift import DriftReport
    from deepcast.pipelines.promote import PromotionDecision
    from deepcast.pipelines.validate import ValidationReport


def _plain(value: Any) -> Any:
    """A field as JSON-able data: nested results and reports through their ``to_dict``."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def _as_dict(result: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of ``result`` in declaration order (``skip`` left out), as plain data."""
    return {f.name: _plain(getattr(result, f.name)) for f in fields(result)
            if f.name not in skip}


def _records_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows)


class _ScoreTable:
    """A result with a ``table`` of score rows (one per model)."""

    table: list[dict[str, Any]]

    @property
    def metrics(self) -> pd.DataFrame:
        """``table`` as a DataFrame."""
        return _records_frame(self.table)

    def to_dict(self) -> dict[str, Any]:
        """The command's ``--json`` output."""
        return _as_dict(self)


@dataclass(frozen=True)
class ValidationResult:
    """What validation found (``report``) and the validated frame (``clean``: sorted, short
    series dropped, gaps interpolated; meant for training only when ``success``)."""

    report: ValidationReport
    clean: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def success(self) -> bool:
        return bool(self.report.success)

    def summary(self) -> str:
        """The report as text: verdict, each failed check with example rows and a fix."""
        return self.report.summary()

    def to_dict(self) -> dict[str, Any]:
        """``deepcast validate --json``."""
        return self.report.to_dict()


@dataclass(frozen=True)
class TrainResult(_ScoreTable):
    """A train run: every model's holdout scores, the best one and the gate's decision."""

    pipeline: str
    parent_run_id: str
    metric: str
    table: list[dict[str, Any]]  # per model: metrics, skill, epochs, converged, fit_s
    reference: dict[str, float]  # seasonal naive's holdout metrics
    best: str
    decision: PromotionDecision
    n_rows: int
    n_series: int
    dropped_series: dict[str, int]
    quarantined: int
    quarantine_path: str | None
    validation_report: str | None
    tracking_uri: str
    #: what the table's reader should know, e.g. a model stopped by max_epochs while its
    #: loss was still falling (its row has ``converged`` False)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BacktestResult(_ScoreTable):
    """A rolling-origin backtest: mean scores per model and ensemble over series x
    cut-offs."""

    pipeline: str
    parent_run_id: str
    metric: str
    n_windows: int
    step: int
    refit: bool | int
    table: list[dict[str, Any]]
    seconds: float
    n_series: int
    dropped_series: dict[str, int]
    tracking_uri: str
    skipped: dict[str, str] = field(default_factory=dict)  # ensemble -> why not in table
    #: what the table's reader should know (one window only, skipped ensembles)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TuneResult:
    """A hyperparameter search: every trial, the best parameters and the tuned YAML."""

    pipeline: str
    parent_run_id: str
    model: str
    sampler: str
    trials: list[dict[str, Any]]  # trial, params..., run_id, state, value, seconds
    best_params: dict[str, Any]
    best_val_loss: float
    output: str
    seconds: float
    tracking_uri: str

    def to_dict(self) -> dict[str, Any]:
        """``deepcast tune --json``."""
        return _as_dict(self)


@dataclass(frozen=True)
class ForecastResult:
    """A batch forecast with a registered model; ``forecast`` holds the rows (also written
    to ``output`` when one was given)."""

    pipeline: str
    model_uri: str
    model_name: str
    model_version: str
    run_id: str
    output: str | None
    rows: int
    series: int
    dropped_series: dict[str, int]
    report: str | None = None  # the HTML report, when one was written
    forecast: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    #: what the forecast's reader should know: the history's warnings (stale series,
    #: filled gaps), the series forecast by the fallback and the conformal levels the
    #: model left out
    notes: list[str] = field(default_factory=list)
    fallback_series: int = 0  # series too short for the model, forecast by the fallback

    def to_dict(self) -> dict[str, Any]:
        """``deepcast forecast --json`` (``report`` only when one was written)."""
        return _as_dict(self, skip=("forecast",) if self.report else ("forecast", "report"))


@dataclass(frozen=True)
class RetrainResult:
    """One night of ``retrain``: drift check, train and gate, forecast, and the verdict.
    A failed or blocked run raises; this record of it is what its artifacts show."""

    pipeline: str
    day: str
    as_of: str | None
    output: str
    drift: DriftReport | None = None
    train: TrainResult | None = None
    forecast: ForecastResult | None = None
    drift_summary: str = "not reached"
    status: str = ""  # promoted | kept | failed | blocked
    message: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, url)
    artifacts: list[str] = field(default_factory=list)  # Prefect artifact keys

    def to_dict(self) -> dict[str, Any]:
        """``deepcast retrain --json``."""
        return _as_dict(self)
