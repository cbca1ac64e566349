"""A Parquet dataset as the data source: ``data.path`` naming a folder of Parquet files
(hive partitions such as ``year=2014/`` become columns) or a glob (``sales/*.parquet``).

Read with pyarrow datasets, only the declared columns, files in sorted path order (the same
data gives the same frame); the content hash covers every file. A forecast into a folder
reads such a dataset shard by shard (:mod:`deepcast.pipelines.shards`, on
:func:`open_dataset`).
"""

from __future__ import annotations

import glob
import hashlib
import logging
from pathlib import Path

import pandas as pd

from deepcast.features.errors import ConfigError, DataError

log = logging.getLogger("deepcast")

SUFFIXES = (".parquet", ".pq")
#: (folder, its files that are not Parquet) named already in this process
_WARNED: set[tuple[Path, tuple[Path, ...]]] = set()
GLOB = set("*?[")


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` names a Parquet dataset (a folder, or a glob in its file name or
    folders), not one file (an existing file named ``sales[2024].csv`` is a file)."""
    path = Path(path)
    return not path.is_file() and (path.is_dir() or bool(GLOB & set(str(path))))


def is_parquet(path: str | Path) -> bool:
    """Whether ``path`` names Parquet: a dataset (:func:`is_dataset`) or a ``.parquet`` /
    ``.pq`` file."""
    return is_dataset(path) or Path(path).suffix.lower() in SUFFIXES


def dataset_files(path: str | Path) -> list[Path]:
    """The Parquet files of a folder (recursively, hidden and ``_``-prefixed ones left out
    as Spark and pyarrow do) or of a glob, sorted; ConfigError when there are none or a
    glob matches other files."""
    path = Path(path)
    if path.is_dir():
        visible = sorted(p for p in path.rglob("*") if p.is_file()
                         and not any(part.startswith((".", "_"))
                                     for part in p.relative_to(path).parts))
        files = [p for p in visible if p.suffix.lower() in SUFFIXES]
        other = [p for p in visible if p.suffix.lower() not in SUFFIXES]
        said = (path.resolve(), tuple(other))  # a CSV beside the partitions: said once
        if other and files and said not in _WARNED:
            _WARNED.add(said)
            log.warning("Parquet dataset %s: %d file(s) that are not Parquet were not read "
                        "(%s)", path, len(other), ", ".join(str(p.relative_to(path))
                                                             for p in other[:3]))
        where = f"folder {path}"
    else:
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                       if Path(p).is_file())
        other = [p for p in files if p.suffix.lower() not in SUFFIXES]
        if other:
            raise ConfigError(f"data.path {str(path)!r} matches files that are not Parquet: "
                              f"{', '.join(p.name for p in other[:3])}",
                              hint="narrow the glob to *.parquet files")
        where = f"glob {str(path)!r}"
    if not files:
        raise ConfigError(f"no Parquet files (.parquet, .pq) in {where}",
                          hint="point data.path at a .csv/.parquet file, a folder of Parquet "
                          "files or a glob such as sales/*.parquet")
    return files


def open_dataset(path: Path):
    """The pyarrow dataset of ``path``'s files: their schemas unified (a column missing
    from some files is null there), and under a folder its hive partition keys (``k=v``
    folders) as string columns, so ``store=0012`` stays ``"0012"`` as an id must."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    files = dataset_files(path)
    try:
        schema = pa.unify_schemas([pq.read_schema(f) for f in files])
        keys = _partition_keys(path, files) if path.is_dir() else []
        clash = [k for k in keys if k in schema.names]
        if clash:
            raise DataError(f"{path}: the partition folder key(s) {clash} are also columns of "
                            "the files", hint="rename the partition folders or the columns")
        fields = pa.schema([(k, pa.string()) for k in keys])
        return ds.dataset([str(f) for f in files], format="parquet",
                          schema=pa.unify_schemas([schema, fields]) if keys else schema,
                          partitioning=ds.partitioning(fields, flavor="hive") if keys
                          else None, partition_base_dir=str(path) if keys else None)
    except DataError:
        raise
    except Exception as exc:  # pyarrow's ArrowInvalid / OSError: a damaged or mixed dataset
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception) -> DataError:
    """The one error for a dataset pyarrow cannot open or read: its first line, the fix."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataError(f"{path}: cannot be read as a Parquet dataset: {first}",
                     hint="check that every file is complete Parquet with compatible "
                     "columns (re-export the dataset)")


def _partition_keys(root: Path, files: list[Path]) -> list[str]:
    """The hive keys of the folders between ``root`` and the files, in path order."""
    keys: dict[str, None] = {}
    for f in files:
        for part in f.relative_to(root).parts[:-1]:
            if "=" in part:
                keys.setdefault(part.split("=", 1)[0])
    return list(keys)


def read_dataset(path: str | Path, columns: set[str] | None = None,
                 nrows: int | None = None) -> pd.DataFrame:
    """The dataset's rows (``columns``: only those, partition columns included; ``nrows``:
    the first rows only, for a preflight)."""
    data = open_dataset(Path(path))
    names = None if columns is None else [c for c in data.schema.names if c in columns]
    try:
        table = data.head(nrows, columns=names) if nrows is not None else \
            data.to_table(columns=names)
    except Exception as exc:
        raise _unreadable(Path(path), exc) from None
    return table.to_pandas()


def dataset_sha256(path: str | Path) -> str:
    """Content hash of a dataset: every file's path (relative to the folder; partition
    values live there) and bytes, in sorted order."""
    path = Path(path)
    base = path if path.is_dir() else None
    h = hashlib.sha256()
    for f in dataset_files(path):
        h.update(str(f.relative_to(base) if base else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
