"""The ``hierarchy:`` section: which levels to build from the bottom series, and how the
forecasts are reconciled (``features.hierarchy``, ``forecasting.reconcile``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from deepcast.features.hierarchy import HierarchySpec
from deepcast.pipelines.config.base import _Strict


class HierarchyConfig(_Strict):
    """A hierarchy of the series: aggregates are built as sums of the bottom series,
    every level is trained on (with a static ``level`` column), and the forecasts are
    reconciled so that they add up."""

    columns: list[str] = Field(
        min_length=1, description="The levels' columns, top first (e.g. [state, industry]): "
        "each bottom series is one combination of their values. Columns of the data "
        "(one value per series; declare them under data.static too), or the parts of "
        "unique_id with `separator`.")
    separator: str | None = Field(
        None, min_length=1, description="Split unique_id into `columns` at this string "
        '("VIC|Food" with "|"); null: the columns are in the data, and aggregate ids join '
        'their values with "/".')
    levels: list[list[str]] | None = Field(
        None, description="Aggregate levels to build, each a list of `columns` ([] is the "
        "total). Default: the total and each leading part of `columns` (a nested "
        "hierarchy: [], [state]); add [industry] for a grouped one. The bottom level is "
        "always there.")
    method: Literal["bottom_up", "top_down", "min_trace_ols", "min_trace_wls_struct",
                    "min_trace_shrink"] = Field(
        "min_trace_shrink", description="Reconciliation (hierarchicalforecast): bottom_up; "
        "top_down (forecast proportions, nested hierarchies only); min_trace_ols, "
        "min_trace_wls_struct, min_trace_shrink (MinT with a shrunk covariance of the "
        "model's backtest residuals; without them, wls_struct and a note).")

    @model_validator(mode="after")
    def _levels(self) -> HierarchyConfig:
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"hierarchy.columns repeats a column: {self.columns}")
        for level in self.levels or []:
            unknown = [c for c in level if c not in self.columns]
            if unknown or len(set(level)) != len(level):
                raise ValueError(f"hierarchy.levels: {level} must be distinct columns of "
                                 f"hierarchy.columns {self.columns}")
        if self.method == "top_down":
            nested = [self.columns[:len(lv)] for lv in self.spec().levels]
            if [list(x) for x in self.spec().levels] != nested:
                raise ValueError("hierarchy.method top_down needs a nested hierarchy (each "
                                 "level a leading part of columns); use min_trace_* or "
                                 "bottom_up for a grouped one")
        return self

    def spec(self) -> HierarchySpec:
        """The levels resolved (total first, bottom last, each once)."""
        given = self.levels if self.levels is not None else \
            [self.columns[:i] for i in range(len(self.columns))]
        ordered = sorted({tuple(lv) for lv in given} - {tuple(self.columns)},
                         key=lambda lv: (len(lv), [self.columns.index(c) for c in lv]))
        # a level's columns in the order of `columns`: [industry, state] == [state, industry]
        ordered = [tuple(c for c in self.columns if c in lv) for lv in ordered]
        return HierarchySpec(tuple(self.columns), self.separator or "/",
                             (*dict.fromkeys(ordered), tuple(self.columns)),
                             in_id=self.separator is not None)
