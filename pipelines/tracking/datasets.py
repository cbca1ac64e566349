"""The data a run used, as MLflow datasets: what fills the UI's Dataset column, its filter and
the comparison of runs by dataset, and what a logged model's metrics were measured on.

deepcast logs metadata only, never a copy of the rows (a nightly panel can hold millions):
the source is where the data came from (the file, or the SQL source's label: never a
database URL), the digest is the start of deepcast's data hash (the full hash is the run's
``deepcast.data_sha256`` tag; MLflow keeps at most 36 characters), the schema is the
validated frame's columns and the profile its row and series counts and time span. A train
run has two: the training span (context ``training``) and the holdout the models are
scored on (context ``holdout``: the last ``test_size`` steps of every series); a backtest
run has the whole frame (context ``backtest``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from deepcast.features.schema import DS, ID

DIGEST_CHARS = 16  # of the 64 of the sha256 (MLflow's column holds 36)
HOLDOUT_SUFFIX = ".holdout"

# pandas dtype kind -> MLflow column type
_TYPES = {"f": "double", "i": "long", "u": "long", "b": "boolean", "M": "datetime"}


@dataclass(frozen=True)
class RunDataset:
    """One dataset of a run, as plain data (shipped to Dask workers with a model's job)."""

    name: str
    source: str
    digest: str
    context: str
    columns: tuple[tuple[str, str], ...]
    profile: dict[str, Any] = field(default_factory=dict)

    def to_mlflow(self) -> Any:
        """The MLflow dataset (metadata only) of this description."""
        return _metadata_dataset(self)


def _profile(df: pd.DataFrame) -> dict[str, Any]:
    if df.empty:
        return {"num_rows": 0, "num_series": 0}
    return {"num_rows": len(df), "num_series": int(df[ID].nunique()),
            "start": str(df[DS].min()), "end": str(df[DS].max())}


def run_datasets(df: pd.DataFrame, name: str, source: str, data_sha256: str,
                 test_size: int | None) -> tuple[RunDataset, ...]:
    """The datasets of a run on the validated frame ``df``: the training span and the
    holdout (``test_size`` given: a train run), else the whole frame (a backtest)."""
    columns = tuple((str(c), _TYPES.get(df[c].dtype.kind, "string")) for c in df.columns)
    digest = data_sha256[:DIGEST_CHARS]

    def dataset(part: pd.DataFrame, suffix: str, context: str) -> RunDataset:
        return RunDataset(f"{name}{suffix}", source, digest, context, columns, _profile(part))

    if test_size is None:
        return (dataset(df, "", "backtest"),)
    from_end = df.groupby(ID, sort=False).cumcount(ascending=False)
    held = (from_end < test_size).to_numpy()
    return (dataset(df[~held], "", "training"),
            dataset(df[held], HOLDOUT_SUFFIX, "holdout"))


def _metadata_dataset(desc: RunDataset) -> Any:
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    class Source(DatasetSource):
        """Where the rows came from (a label: deepcast never re-reads data through MLflow)."""

        def __init__(self, uri: str) -> None:
            self.uri = uri

        @staticmethod
        def _get_source_type() -> str:
            return "deepcast"

        def load(self, **kwargs: Any) -> Any:
            raise NotImplementedError("deepcast logs where its data came from, not the data")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> Source:
            return cls(str(raw_source))

        def to_dict(self) -> dict[str, Any]:
            return {"uri": self.uri}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> Source:
            return cls(source_dict["uri"])

    class Described(MetaDataset):
        @property
        def profile(self) -> dict[str, Any]:
            return desc.profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(desc.profile)}

    schema = Schema([ColSpec(kind, col) for col, kind in desc.columns])
    return Described(Source(desc.source), name=desc.name, digest=desc.digest, schema=schema)
