"""Ingest stage: read a CSV or Parquet file (or a Parquet dataset: a folder or glob) into a
coerced long frame.

The result still carries the row flags of :func:`deepcast.features.schema.coerce_long_frame`;
validation turns it into a canonical frame or a report.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from deepcast.features.errors import ConfigError, DataError
from deepcast.features.schema import (
    AUTO,
    DS,
    FLAG_COLUMNS,
    ID,
    ColumnSpec,
    Y,
    coerce_long_frame,
    release_arrow_memory,
)
from deepcast.pipelines.config import DataConfig
from deepcast.pipelines.parquet_dataset import (
    dataset_files,
    dataset_sha256,
    is_dataset,
    read_dataset,
)

READERS = (".csv", ".parquet", ".pq")
#: how check_source names the file it checks, and the setting to fix: the data, --future
DATA_SOURCE = ("data file", "fix data.path in the YAML (relative to the YAML file) or --data")
FUTURE_SOURCE = ("future covariates file", "fix --future: the file of the future covariates "
                 "over the forecast dates")
# compressed CSV: pandas infers the codec from the last suffix
COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}
MAGIC = ((b"\x1f\x8b", ".gz"), (b"BZh", ".bz2"), (b"\xfd7zXZ\x00", ".xz"),
         (b"\x28\xb5\x2f\xfd", ".zst"), (b"PK\x03\x04", ".zip"))
MAX_LINE = 16 << 20  # a CSV line longer than this is not a table (a file with no newlines)


def column_spec(data: DataConfig) -> ColumnSpec:
    """The column names and time kind declared in the YAML."""
    return ColumnSpec(data.id_col, data.time_col, data.target_col, data.freq)


def _kind(path: Path) -> str:
    """``csv`` or ``parquet`` from the file name (``x.csv.gz`` is a compressed CSV)."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    return "csv" if last == ".csv" else "parquet" if last in (".parquet", ".pq") else ""


def check_source(path: str | Path, what: str = DATA_SOURCE[0], fix: str = DATA_SOURCE[1]
                 ) -> Path:
    """The data file exists, is a regular file and has a readable type (ConfigError
    otherwise: a FIFO or device would block or fail deep inside the reader); or a Parquet
    dataset (a folder or glob) with at least one Parquet file. ``what`` and ``fix`` name
    the file and the setting to correct when it does not exist."""
    path = Path(path)
    if is_dataset(path):
        try:
            dataset_files(path)
        except ConfigError as exc:  # its message names data.path: name this file instead
            if (what, fix) == DATA_SOURCE:
                raise
            raise ConfigError(f"{what} {path}: {exc.message}", hint=fix) from None
        return path
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}", hint=fix)
    if not path.is_file():
        kind = ("a folder" if path.is_dir() else "a named pipe (FIFO)" if path.is_fifo()
                else "a device or socket")
        raise ConfigError(f"{path} is {kind}, not a {what}",
                          hint=f"{fix}; a .csv or .parquet file")
    if not _kind(path):
        raise ConfigError(f"{path}: unsupported file type {''.join(path.suffixes)!r} for the "
                          f"{what}; expected .csv (optionally .csv.gz/.bz2/.xz/.zst/.zip) or "
                          ".parquet", hint="convert the file to CSV or Parquet")
    return path


def _sniff_csv(path: Path) -> None:
    """Fail fast, before pandas reads it whole, on a CSV that is compressed under a plain
    ``.csv`` name or has no line breaks within its first 16 MiB."""
    if path.suffix.lower() in COMPRESSED:
        return
    with open(path, "rb") as fh:
        head = fh.read(MAX_LINE)
    for magic, suffix in MAGIC:
        if head.startswith(magic):
            raise DataError(f"{path}: the file is {COMPRESSED[suffix]}-compressed, not plain "
                            "CSV text", hint=f"rename it to {path.name}{suffix} (deepcast "
                            "reads compressed CSV by its suffix) or decompress it")
    if len(head) == MAX_LINE and b"\n" not in head and b"\r" not in head:
        raise DataError(f"{path}: no line break in the first {MAX_LINE >> 20} MiB: this is "
                        "not a CSV table with one row per line",
                        hint="export the data again as CSV (one row per line) or Parquet")


def read_table(path: str | Path, spec: ColumnSpec, nrows: int | None = None,
               columns: set[str] | None = None) -> pd.DataFrame:
    """Read a CSV/Parquet file as raw columns (strings for keys, so nothing is guessed);
    ``nrows`` reads only the first rows of a CSV (a Parquet file: its schema and first
    row group); ``columns`` reads only those (undeclared columns are never loaded)."""
    path = check_source(path)
    if is_dataset(path):
        raw = read_dataset(path, columns, 100 if nrows is not None else None)
        if raw.empty:
            raise DataError(f"{path}: no data rows", hint="export the dataset again with its "
                            "rows")
        return raw
    is_csv = _kind(path) == "csv"
    kind = "CSV" if is_csv else "Parquet"
    use = None if columns is None else (lambda c: c in columns)
    try:
        if is_csv:
            _sniff_csv(path)
            raw = pd.read_csv(path, dtype={spec.id_col: "str", spec.time_col: "str"},
                              encoding="utf-8-sig", low_memory=False, nrows=nrows,
                              usecols=use)
        elif nrows is None:
            raw = _read_parquet(path, columns)
        else:
            raw = _peek_parquet(path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text ({_first_non_utf8(path)})",
                        hint="re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
                        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty",
                        hint="export the data again; a header and rows are needed") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot be read as {kind}: {first}",
                        hint=f"check that the file really is {kind} and is complete "
                        "(re-export it)") from None
    if raw.empty:
        raise DataError(f"{path}: no data rows (columns: {', '.join(map(str, raw.columns))})",
                        hint="export the data again with its rows")
    return raw


def _first_non_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 is: line (1 = the header) and the byte."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = max(exc.start - (len(exc.object) - len(chunk)), 0)  # in this chunk
                lines += chunk.count(b"\n", 0, at)
                return f"line {lines}, byte {offset + at} is {chunk[at:at + 1]!r}"
            lines += chunk.count(b"\n")
            offset += len(chunk)
    return "an invalid byte sequence"


def _read_parquet(path: Path, columns: set[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    names = None
    if columns is not None:
        names = [c for c in pq.read_schema(path).names if c in columns]
    raw = pd.read_parquet(path, columns=names)
    release_arrow_memory()  # the read buffers: 250 MB at 10M rows
    return raw


def declared_columns(data: DataConfig) -> set[str]:
    return {data.id_col, data.time_col, data.target_col, *data.static, *data.past,
            *data.future}


def _peek_parquet(path: Path) -> pd.DataFrame:
    """The first row group of a Parquet file (reads the footer: a truncated or fake file
    fails here)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        if pf.metadata.num_rows == 0 or pf.num_row_groups == 0:
            return pf.schema_arrow.empty_table().to_pandas()
        return pf.read_row_group(0).slice(0, 100).to_pandas()


def peek(data: DataConfig, path: str | Path) -> None:
    """Preflight of a data file, in well under a second before any flow starts: it exists,
    has a supported type, can be read, has rows and the declared columns. Raises the same
    :class:`ConfigError` / :class:`DataError` as a full read would."""
    spec = column_spec(data)
    head = read_table(path, spec, nrows=100)
    coerce_long_frame(head, spec, source=str(path))
    check_covariate_columns(head.columns, data, str(path), coerced=False)


def check_covariate_columns(columns: pd.Index, data: DataConfig, source: str,
                            coerced: bool = True) -> None:
    """Every covariate the YAML declares is a column of the data (DataError otherwise).
    ``coerced``: ``columns`` are a coerced frame's (deepcast's names and row flags), shown
    under the names the YAML gives them; else the file's own, shown as they are."""
    declared = [*data.static, *data.past, *data.future]
    absent = [c for c in declared if c not in columns]
    if absent:
        own = {ID: data.id_col, DS: data.time_col, Y: data.target_col} if coerced else {}
        shown = [str(own.get(c, c)) for c in columns if not coerced or c not in FLAG_COLUMNS]
        have = ", ".join(shown[:20])
        raise DataError(f"{source}: missing covariate column(s) {absent} declared in the "
                        f"pipeline (data.static / past / future); the data has: {have}",
                        hint="add the columns to the data or remove them from the YAML")


def ingest(data: DataConfig, path: str | Path | None = None) -> pd.DataFrame:
    """Read ``path`` (default: ``data.path``, or the ``data.sql`` query) into a coerced long
    frame with row flags."""
    spec = column_spec(data)
    if path is None:
        data.require_source()
    if path is None and data.sql is not None:
        from deepcast.pipelines.sql import read_sql

        df = coerce_long_frame(read_sql(data.sql.query, data.sql.url_env), spec,
                               source="data.sql")
        df.attrs["source"] = data.source
        return df
    path = Path(path) if path is not None else data.path
    raw = read_table(path, spec, columns=declared_columns(data))
    if not {data.id_col, data.time_col, data.target_col} <= set(raw.columns):
        raw = read_table(path, spec, nrows=1)  # the message lists the file's own columns
    df = coerce_long_frame(raw, spec, source=str(path))
    df.attrs["source"] = str(path)  # reports name the file actually read (--data too)
    return df


def ingest_future(data: DataConfig, path: str | Path) -> pd.DataFrame:
    """Read a future-covariates file (id, time and the future columns; the target column
    may be absent) into a coerced long frame with an empty target."""
    check_source(path, *FUTURE_SOURCE)  # named as what it is, not as data.path
    spec = column_spec(data)
    raw = read_table(path, spec, columns=declared_columns(data))
    if not {data.id_col, data.time_col} <= set(raw.columns):
        raw = read_table(path, spec, nrows=1)
    if spec.target_col not in raw.columns:
        raw[spec.target_col] = float("nan")
    return coerce_long_frame(raw, spec, source=str(path))


def file_sha256(path: str | Path) -> str:
    """Content hash of the input file or Parquet dataset (tracked with every run)."""
    if is_dataset(path):
        return dataset_sha256(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def frame_sha256(df: pd.DataFrame) -> str:
    """Content hash of a canonical frame (order-sensitive, dtype-independent)."""
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def parse_as_of(as_of: str | int | None, data: DataConfig) -> pd.Timestamp | int | None:
    """An ``as_of`` cut-off as a value of ``ds``: an integer step for integer ``ds`` (under
    ``data.freq: auto``: when ``as_of`` is a whole number), else a timestamp (timezone-aware
    ones converted to UTC, as ingest does); ConfigError if it does not parse."""
    if as_of is None or as_of == "":
        return None
    integer = isinstance(data.freq, int) or (data.freq == AUTO and str(as_of).strip().isdigit())
    if integer:
        try:
            return int(as_of)
        except ValueError:
            raise ConfigError(f"as_of {as_of!r} is not an integer step (ds is an integer)",
                              hint="pass a step number, e.g. --as-of 120") from None
    try:
        stamp = pd.Timestamp(as_of)
    except ValueError:
        raise ConfigError(f"as_of {as_of!r} is not a date or timestamp",
                          hint="pass an ISO 8601 date, e.g. --as-of 2014-06-30") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def cut_at(raw: pd.DataFrame, as_of: pd.Timestamp | int | None) -> pd.DataFrame:
    """The rows of a coerced frame with ``ds <= as_of`` (what was known then); rows whose
    ``ds`` did not parse are kept so that validation still reports them."""
    if as_of is None:
        return raw
    from deepcast.features.schema import DS

    cut = raw[~(raw[DS] > as_of).fillna(False).to_numpy(dtype=bool)]
    if cut.empty:
        first = raw[DS].min()
        raise DataError(f"no rows with ds <= as_of {as_of} (the data starts at {first})",
                        hint="pick a later as_of date")
    cut.attrs.update(raw.attrs)
    return cut
