"""Shards of a panel by series: each series whole in one shard, shards of about
``execution.shard_rows`` rows, planned and read without loading the panel into one process.

The planner scans only the series-ID column of a Parquet file or dataset (pyarrow, batch by
batch), so the driver holds one row count per series; a worker reads its shard's rows with a
pushed-down ``unique_id IN (...)`` filter. A frame already in memory (the Python API) is
sharded by slicing. Series are packed in sorted-ID order, so the same data gives the same
shards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.features.errors import ConfigError, DataError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``: its series IDs (as the source stores them)
    and row count."""

    index: int
    count: int
    ids: tuple[Any, ...]
    rows: int
    nulls: bool = False  # the source's rows with no series ID come with this shard

    @property
    def label(self) -> str:
        """``shard 3/10 (series A .. K, 120 series)``: how errors and logs name it."""
        if not self.ids:
            return f"shard {self.index + 1}/{self.count} (rows without a series ID)"
        first, last = str(self.ids[0]), str(self.ids[-1])
        span = first if len(self.ids) == 1 else f"{first} .. {last}"
        return f"shard {self.index + 1}/{self.count} (series {span}, {len(self.ids)} series)"


def pack(counts: pd.Series, target_rows: int) -> list[Shard]:
    """Shards of whole series (``counts``: rows per series ID) in sorted-ID order, each
    closed once it reaches ``target_rows`` (a series longer than that is a shard alone).
    Rows counted under a missing ID go with the first shard (validation reports them, as
    it does reading the whole source), or make a shard of their own."""
    missing = counts.index.isna()
    null_rows = int(counts[missing].sum())
    counts = counts[~missing]
    if counts.empty:
        return [Shard(0, 1, (), null_rows, nulls=True)] if null_rows else []
    order = sorted(counts.index, key=str)
    groups: list[tuple[list[Any], int]] = [([], 0)]
    for uid in order:
        n = int(counts[uid])
        ids, rows = groups[-1]
        if ids and rows + n > target_rows:
            groups.append(([uid], n))
        else:
            ids.append(uid)
            groups[-1] = (ids, rows + n)
    shards = [Shard(i, len(groups), tuple(ids), rows) for i, (ids, rows) in enumerate(groups)]
    if null_rows:
        shards[0] = replace(shards[0], rows=shards[0].rows + null_rows, nulls=True)
    return shards


def plan_source(path: str | Path, id_col: str, target_rows: int) -> list[Shard]:
    """The shards of a Parquet file or dataset, from its ID column only."""
    data = open_parquet(path)
    if id_col not in data.schema.names:
        raise DataError(f"{path}: no column {id_col!r} (columns: "
                        f"{', '.join(data.schema.names[:20])})",
                        hint="set data.id_col to the series-ID column")
    counts: pd.Series | None = None
    for batch in _batches(data, [id_col], path):
        part = batch.column(0).value_counts()
        chunk = pd.Series(part.field("counts").to_numpy(zero_copy_only=False),
                          index=part.field("values").to_pylist())
        counts = chunk if counts is None else counts.add(chunk, fill_value=0)
    if counts is None or counts.empty:
        raise DataError(f"{path}: no data rows", hint="export the data again with its rows")
    from deepcast.features.schema import release_arrow_memory

    release_arrow_memory()  # the ID column's read buffers: the driver keeps only the counts
    return pack(counts.astype("int64"), target_rows)


def plan_frame(frame: pd.DataFrame, id_col: str, target_rows: int) -> list[Shard]:
    """The shards of a frame in memory."""
    return pack(frame[id_col].value_counts(sort=False, dropna=False), target_rows)


def read_shard(path: str | Path, shard: Shard, id_col: str,
               columns: set[str] | None) -> pd.DataFrame:
    """The rows of ``shard`` (only ``columns``), in the source's row order."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    data = open_parquet(path)
    names = None if columns is None else [c for c in data.schema.names if c in columns]
    ids = pa.array(list(shard.ids), type=data.schema.field(id_col).type)
    where = ds.field(id_col).is_null() if shard.nulls else None
    if len(ids):
        bounds = pc.min_max(ids)  # not ids[0], ids[-1]: shards are in str order, IDs may be ints
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        # the range lets pyarrow skip files and row groups by their min/max statistics (a
        # dataset sorted or partitioned by series is read once over all shards); isin is exact
        mine = (ds.field(id_col) >= low) & (ds.field(id_col) <= high) & ds.field(id_col).isin(ids)
        where = mine if where is None else where | mine
    try:
        table = data.to_table(columns=names, filter=where)
    except Exception as exc:  # pyarrow's ArrowInvalid / OSError: a file changed or damaged
        raise DataError(f"{path}: reading {shard.label} failed: {_first_line(exc)}",
                        hint="do not change the data while a run reads it; re-run") from None
    return table.to_pandas()


def open_parquet(path: str | Path):
    """The pyarrow dataset of one Parquet file, a folder of them or a glob; a ConfigError
    for any other source (a CSV: convert it)."""
    import pyarrow.dataset as ds

    from deepcast.pipelines.parquet_dataset import is_dataset, is_parquet, open_dataset

    path = Path(path)
    if is_dataset(path):
        return open_dataset(path)
    if not is_parquet(path):
        raise ConfigError(f"a forecast into a folder reads its history shard by shard, from "
                          f"Parquet; {path} is not Parquet",
                          hint="convert the data to Parquet (pandas: df.to_parquet(...)), or "
                          "give --output a .csv/.parquet file name")
    try:
        return ds.dataset(str(path), format="parquet")
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as Parquet: {_first_line(exc)}",
                        hint="check that the file is complete Parquet (re-export it)"
                        ) from None


def _batches(data: Any, columns: list[str], path: str | Path) -> Iterator[Any]:
    try:
        yield from data.to_batches(columns=columns)
    except Exception as exc:
        raise DataError(f"{path}: cannot be read: {_first_line(exc)}",
                        hint="check that every file is complete Parquet (re-export it)"
                        ) from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
