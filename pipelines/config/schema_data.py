"""The `data:` and `features:` sections: where the long table is, how its columns are
named, and the window geometry."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from deepcast.features.covariates import CALENDAR
from deepcast.pipelines.config.base import _Strict
from deepcast.pipelines.config.freq import check_freq

# A sanity cap on window lengths: a million steps is 114 years of hourly data, and one
# window of it is already 4 MB per series in float32 (lookback 1e12 asked for 36 TiB).
MAX_STEPS = 1_000_000


class SqlSource(_Strict):
    """A query whose rows are the long table (read through SQLAlchemy)."""

    query: str = Field(min_length=1, description="SELECT returning the id, time, target "
                       "and covariate columns.")
    url_env: str = Field("DEEPCAST_DB_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                         description="Environment variable holding the database URL (never "
                         "put the URL in the YAML).")


NO_SOURCE = "no data source in the config"


class DataConfig(_Strict):
    """Where the long table is and how its columns are named."""

    path: Path | None = Field(None, description="CSV or Parquet file, or a Parquet dataset "
                              "(a folder, hive partitions included, or a glob), relative to "
                              "the YAML file; or give `sql`. Neither: the data comes with "
                              "each call (Python API frames, or --data).")
    sql: SqlSource | None = Field(None, description="Read the long table with an SQL query "
                                  "instead of a file: {query: ..., url_env: DEEPCAST_DB_URL}.")
    id_col: str = Field("unique_id", description="Column holding the series identifier. "
                        "The three column names may change after training: a registered model "
                        "is handed the data under the names it was trained with.")
    time_col: str = Field("ds", description="Column holding the timestamp or integer step.")
    target_col: str = Field("y", description="Column holding the value to forecast.")
    freq: str | int = Field(
        description="pandas offset alias (e.g. '30min', 'h', 'D', 'MS') for datetime `ds`, "
        "a positive integer step for integer `ds`, or 'auto': inferred from the data by "
        "validation (integer `ds` when every value is a whole number: the most common step; "
        "dates: the pandas alias most series agree on), stated in the validation summary and "
        "used by every later stage; irregular data fails validation, asking for the alias."
    )
    season_length: int = Field(
        1, ge=1, description="Seasonal period in steps (MASE, seasonal naive), or a list of "
        "them for data with several seasons, e.g. [24, 168] for hourly data (daily and "
        "weekly): the first drives MASE, seasonal naive and the default lookback; the "
        "statistical models (ets, theta, arima) use all through an MSTL decomposition."
    )
    seasonalities: list[int] = Field(
        [], description="Every seasonal period, the first being season_length (written for "
        "you when season_length is a list; no need to set it).")
    short_series: Literal["pad", "drop", "error"] = Field(
        "pad",
        description="Series shorter than lookback + horizon + val_size + test_size: 'pad' "
        "trains and forecasts them from left-padded, masked windows (series shorter than "
        "horizon + val_size + test_size + 1 are still dropped and reported); 'drop' them "
        "(listed in the validation report); or fail validation with 'error'.",
    )
    nonnegative: Literal["auto"] | bool = Field(
        "auto", description="Floor forecasts, quantiles and interval bands at 0: true; "
        "false; 'auto': when no training value is below zero (counts, sales, demand). "
        "Saved with the model, so its forecasts are floored wherever it is served.")
    fallback: Literal["seasonal_naive", "none"] = Field(
        "seasonal_naive",
        description="A series `deepcast forecast` drops as too short for the model (with "
        "short_series: drop) still gets a forecast: seasonal naive with one full season of "
        "history, else naive, marked in the forecast's `fallback` column (empty for the "
        "model's rows) and counted in its notes and report; 'none': no fallback rows and no "
        "`fallback` column.")
    static: list[str] = Field(
        [], description="Static covariates: columns constant within each series (e.g. "
        "store type, region); categorical ones get learned embeddings.")
    past: list[str] = Field(
        [], description="Past covariates: observed only up to the forecast origin (e.g. "
        "measured temperature); the model never sees their values over the horizon.")
    future: list[str] = Field(
        [], description="Future covariates: known over the horizon (e.g. planned prices, "
        "holidays); `deepcast forecast` needs them for the forecast dates.")
    categorical: list[str] | None = Field(
        None, description="Which static columns are categorical (default: the non-numeric "
        "ones).")
    bad_rows: Literal["error", "quarantine"] = Field(
        "error",
        description="Rows that cannot be used: an empty unique_id or ds, a ds that does not "
        "parse, a y that is not a finite number, a repeated (unique_id, ds). 'error' fails "
        "validation; 'quarantine' moves them to quarantine.csv next to the validation report "
        "(with a `reason` column), counts them in the report and the MLflow run, and goes "
        "on (a row with a bad y keeps its place with y missing, so `missing_y` applies).",
    )
    data_docs: Literal["on_failure", "always"] = Field(
        "on_failure",
        description="When to build Great Expectations Data Docs (HTML) next to "
        "validation.json: 'on_failure' (the default: a passing nightly run only writes the "
        "JSON, 1-4 s saved per run) or 'always'. `deepcast validate` always builds them.",
    )
    missing_y: Literal["error", "interpolate"] = Field(
        "error",
        description="Missing target values: 'error' fails validation; 'interpolate' fills them "
        "linearly within each series (before the first value: that value; holes longer "
        "than `max_gap` fail; empty values after the last one are left out with a "
        "warning, not made up), reported per series in the validation summary.",
    )
    fill_gaps: Literal["none", "interpolate", "zero", "ffill"] = Field(
        "none",
        description="Timestamps missing from a series' grid: 'none' fails validation (rows "
        "not one `freq` step after the previous); 'interpolate', 'zero' or 'ffill' (the "
        "previous value) inserts them and fills y so; covariates of an inserted row carry "
        "the previous row's values forward. Gaps longer than `max_gap` are not filled (and "
        "fail); what was filled is reported per series (validation.json and the summary).",
    )
    max_gap: int | None = Field(
        None, ge=1,
        description="Longest run of missing steps that `fill_gaps` and `missing_y: "
        "interpolate` may fill; a longer gap or hole fails validation naming the series "
        "and dates. Default: no limit, but a series more than 10 % filled gets a warning "
        "in the summary.",
    )

    @model_validator(mode="before")
    @classmethod
    def _season_list(cls, raw: object) -> object:
        """``season_length: [24, 168]`` -> season_length 24, seasonalities [24, 168]."""
        if not isinstance(raw, dict) or not isinstance(raw.get("season_length"), list):
            return raw
        periods = raw["season_length"]
        if not periods or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1
                                  for p in periods) or len(set(periods)) != len(periods):
            raise ValueError("season_length must be a positive whole number or a list of "
                             f"distinct ones (e.g. [24, 168]), got {periods}")
        return {**raw, "season_length": periods[0],
                "seasonalities": periods if len(periods) > 1 else []}

    @model_validator(mode="after")
    def _seasons_agree(self) -> DataConfig:
        if self.seasonalities and (self.seasonalities[0] != self.season_length
                                   or min(self.seasonalities) < 1):
            raise ValueError("seasonalities must start with season_length and be >= 1 "
                             "(write season_length: [24, 168] instead of both)")
        return self

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.path is not None and self.sql is not None:
            raise ValueError("give one data source: `path` (a CSV/Parquet file) or `sql` (a "
                             "query), not both")
        return self

    @property
    def source(self) -> str:
        """The data source for messages and run tags (never the database URL)."""
        if self.path is None and self.sql is None:
            return NO_SOURCE
        return str(self.path) if self.path is not None else f"sql: {self.sql.query[:200]}"

    def require_source(self, flag: str = "--data, or the Python API's frame") -> None:
        """ConfigError when the config names no data (neither ``path`` nor ``sql``: fine
        for the Python API given frames) and none was passed (``flag``)."""
        if self.path is None and self.sql is None:
            from deepcast.features.errors import ConfigError

            raise ConfigError("data: the pipeline names no data source (data.path or "
                              "data.sql) and no data was passed",
                              hint=f"set data.path (a CSV/Parquet file) or data.sql in the "
                              f"YAML, or pass the data ({flag})")

    @field_validator("freq")
    @classmethod
    def _check_freq(cls, v: str | int) -> str | int:
        return check_freq(v)


class FeaturesConfig(_Strict):
    """Window geometry and scaling."""

    lookback: int = Field(ge=1, le=MAX_STEPS, description="Input window length (steps of "
                          "history per forecast); at most 1,000,000.")
    horizon: int = Field(ge=1, le=MAX_STEPS, description="Steps forecast in one shot (direct "
                         "multi-step); at most 1,000,000.")
    scaler: Literal["standard", "none"] = Field(
        "standard", description="Per-series scaling fit on the training span only."
    )
    target_transform: Literal["none", "log1p", "boxcox"] = Field(
        "none", description="Transform of y before the scaling, undone on every forecast "
        "column (quantiles and intervals too): log1p (y > -1; counts, sales, growth) or "
        "boxcox (y > 0; one lambda per series fit on the training span by maximum "
        "likelihood, clipped to [-1, 2]).")
    calendar: Literal["auto", "none"] | list[Literal[tuple(CALENDAR)]] = Field(  # type: ignore[valid-type]
        "auto", description="Calendar features of datetime `ds` used as future covariates "
        "(sin/cos of the position in the cycle): 'auto' picks them from freq (hourly: hour, "
        f"dayofweek; daily: dayofweek, dayofyear; monthly: month ...), 'none', or a list of "
        f"{', '.join(CALENDAR)}.")
    id_embedding: int = Field(
        0, ge=0, le=1024, description="Width of a learned series-ID embedding (0: none). "
        "An unseen series gets the mean embedding.")
    embedding_dim: int = Field(
        4, ge=1, le=1024, description="Width of each categorical static's embedding. An "
        "unseen category gets the mean embedding.")
