"""Forecast stage: load a registered model, forecast every series, write the file atomically.

Forecast file contract: ``unique_id, ds, yhat, model_name, model_version, run_id,
fallback`` (then quantile and band columns) -- one row per series and future step;
``fallback`` names the method of a series the model could not forecast (empty for the
model's rows; absent with ``data.fallback: none``); CSV or Parquet by the output's
extension; written to a temporary file in the same folder and renamed, so readers never
see a partial file. Files written together (the forecast and its report) are renamed only
once all are written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from deepcast.features.errors import ConfigError, RunFailed

FORECAST_COLUMNS = ["unique_id", "ds", "yhat", "model_name", "model_version", "run_id",
                    "fallback"]
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class FileKind:
    """A file the user names on the command line: its option, the extensions it takes
    (each mapped to its format) and the hint for a wrong one -- spelled once, used both
    up front (:meth:`check`) and when writing (:meth:`format`)."""

    option: str
    suffixes: dict[str, str]
    hint: str

    def format(self, path: str | Path) -> tuple[Path, str]:
        """(path, format) by the extension, or a ConfigError naming the option."""
        path = Path(path)
        if path.suffix.lower() not in self.suffixes:
            raise ConfigError(f"{self.option} {path}: unsupported extension "
                              f"{path.suffix!r}", hint=self.hint)
        return path, self.suffixes[path.suffix.lower()]

    def check(self, path: str | Path) -> Path:
        """``path`` as a Path, or a ConfigError naming the option when its extension is
        wrong, it is a folder, a folder above it is a file, or its folder is not writable:
        checked before any work is done."""
        path = self.format(path)[0]
        if path.is_dir():
            raise ConfigError(f"{self.option} {path} is a folder", hint="give a file name")
        folder = next((p for p in path.absolute().parents if p.exists()), None)
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"{self.option} {path}: {folder} is a file, not a folder",
                              hint="choose a path whose folders are folders")
        if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{self.option} {path}: the folder {folder} is not writable",
                              hint="choose a folder you can write to, or fix its permissions")
        return path


OUTPUT = FileKind("--output", FORMATS, "use a .csv or .parquet file name")


def check_output_path(path: str | Path) -> Path | str:
    """Fail fast (before any work) on an unsupported extension, a folder name or an unsafe
    ``sql://table`` name; a name without an extension is a forecast folder
    (:mod:`deepcast.pipelines.forecast_folder`)."""
    from deepcast.pipelines.forecast_folder import check_folder, is_folder_output

    if is_folder_output(path):
        return check_folder(path)
    if str(path).startswith("sql://"):
        from deepcast.pipelines.sql import check_table_name

        check_table_name(str(path))
        return str(path)
    return OUTPUT.check(path)


FileWrite = tuple[Path, Callable[[BinaryIO], None]]  # (path, what writes its bytes)


def write_output(df: pd.DataFrame, output: str | Path, url_env: str | None = None,
                 formula_guard: bool = True, also: Sequence[FileWrite] = ()) -> Path | str:
    """Write the forecast to a file or, for ``sql://table``, replace the table's rows in
    one transaction (database URL from ``url_env``), together with the files ``also``
    (the report): all of them change, or none does (:func:`write_files`)."""
    if str(output).startswith("sql://"):
        from deepcast.pipelines.sql import DEFAULT_URL_ENV, write_table

        written: list[str] = []
        write_files(also, before_rename=lambda: written.append(
            write_table(df, str(output), url_env or DEFAULT_URL_ENV)))
        return written[0]
    return write_files([forecast_file(df, output, formula_guard), *also])[0]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def guard_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (starting ``=``, ``+``, ``-``,
    ``@``, tab or CR; OWASP "CSV injection") get a leading ``'``, so Excel or LibreOffice
    show them as text. Plain numbers written as text (``-12``) are left as they are."""
    out = df
    for col in df.columns:
        values = df[col]
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        text = values.astype("str")
        risky = values.notna() & text.str.startswith(FORMULA_START)
        if not risky.any():  # the usual case: one pass over the column, nothing copied
            continue
        risky[risky] = ~text[risky].str.match(_NUMBER)  # numbers only where it matters
        if risky.any():
            out = out.copy() if out is df else out
            out[col] = text.where(~risky, "'" + text).where(values.notna())
    return out


def forecast_file(df: pd.DataFrame, path: str | Path, formula_guard: bool = True
                  ) -> FileWrite:
    """(path, writer) of a CSV/Parquet forecast file. CSV text cells are guarded against
    formula injection (:func:`guard_formulas`) unless ``formula_guard`` is False; Parquet
    keeps values as they are (typed, never run)."""
    # the folder was checked before any work (check_output_path); a folder that went away
    # or filled up since is reported by write_files as a RunFailed
    path, fmt = OUTPUT.format(path)

    def write(fh: BinaryIO) -> None:
        if fmt == "csv":
            (guard_formulas(df) if formula_guard else df).to_csv(fh, index=False)
        else:
            df.to_parquet(fh, index=False)

    return path, write


def write_atomic(df: pd.DataFrame, path: str | Path, formula_guard: bool = True) -> Path:
    """Write CSV/Parquet to a temp file next to ``path``, fsync, then rename over it
    (:func:`forecast_file` says what is written)."""
    return write_files([forecast_file(df, path, formula_guard)])[0]


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temp file next to ``path``, fsync, then rename it over ``path``:
    a reader never sees a partial file and a failure leaves the previous file intact."""
    return write_files([(Path(path), write)])[0]


def write_files(files: Sequence[FileWrite], before_rename: Callable[[], object] | None = None
                ) -> list[Path]:
    """Write every file to a temp file next to it (fsynced), call ``before_rename`` (a
    database transaction that belongs with them), then rename each temp over its file:
    until every file is written nothing is renamed, so on a failure no file changes and
    no temp file is left behind."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, write in files:
            staged.append((_stage(Path(path), write), Path(path)))
        if before_rename is not None:
            before_rename()
        for tmp, path in staged:
            _rename(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)  # renamed ones are gone already
    return [path for _, path in staged]


def _stage(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """``write`` into a new temp file next to ``path`` (fsynced, readable as any new file);
    its path. A failure removes the temp file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(path)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=path.parent)
    except OSError as exc:
        raise RunFailed(f"cannot write in {path.parent}: {exc.strerror}",
                        hint="check permissions and free space") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as readable as any new file (mkstemp: owner only)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunFailed(f"writing {path} failed: {exc.strerror or exc}",
                        hint="check permissions and free space; the previous file is intact"
                        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _rename(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise RunFailed(f"writing {path} failed: {exc.strerror or exc}",
                        hint="check the folder's permissions") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_orphans(path: Path) -> list[Path]:
    """Delete temp files of earlier writers of ``path`` that died (SIGKILL, power loss)
    before renaming them; a live writer's temp file (its process exists) is left alone."""
    from deepcast.pipelines.locks import process_alive

    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def finish_forecast(fc: pd.DataFrame, version: str, run_id: str) -> pd.DataFrame:
    """Add the registry columns and order columns as the contract says (``fallback`` when
    the forecast has it)."""
    fc = fc.copy()
    fc["model_version"] = str(version)
    fc["run_id"] = run_id
    first = [c for c in FORECAST_COLUMNS if c in fc.columns]
    return fc[first + [c for c in fc.columns if c not in FORECAST_COLUMNS]]


SHARD_SERIES = 2000  # series per predict call of a batch forecast


def predict_in_shards(predict: Callable[[pd.DataFrame], pd.DataFrame], history: pd.DataFrame,
                      id_col: str, shard_series: int = SHARD_SERIES) -> pd.DataFrame:
    """``predict(history)`` over shards of ``shard_series`` series (one progress step each;
    every series is forecast from its own rows only, so sharding changes no value)."""
    from deepcast.pipelines import progress

    ids = history[id_col].drop_duplicates().to_numpy()
    shards = [ids[i : i + shard_series] for i in range(0, len(ids), shard_series)] or [ids]
    parts = []
    with progress.task("forecast series", len(ids)) as advance:
        for shard in shards:
            part = history if len(shards) == 1 else history[history[id_col].isin(shard)]
            parts.append(predict(part))
            advance(len(shard))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def needs_future(predictor) -> bool:
    """Whether the model takes user-supplied future covariates (calendar ones it computes)."""
    return predictor.encoder is not None and bool(predictor.encoder.spec.future)


def split_history(raw: pd.DataFrame, future: pd.DataFrame | None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, future rows) of a coerced frame: the future rows are ``future`` (from
    --future) or the trailing rows of each series with an empty target."""
    from deepcast.features.covariates import split_future
    from deepcast.features.schema import Y_INVALID, Y, sort_long_frame

    frame = sort_long_frame(raw)
    empty = frame[Y].isna().to_numpy() & ~frame[Y_INVALID].to_numpy(dtype=bool)
    history, ahead = split_future(frame, Y, empty)
    return history, (future if future is not None else ahead)


def future_rows(ahead: pd.DataFrame, clean: pd.DataFrame, predictor) -> pd.DataFrame:
    """The future rows for the ``horizon`` steps after each series of the validated
    history, with every future covariate; else a :class:`DataError` naming series and
    dates (the same check the model applies)."""
    from deepcast.features.covariates import check_future
    from deepcast.features.schema import DS, ID, Y, future_index

    last = clean.groupby(ID, sort=True)[DS].max()
    dates = future_index(last.to_numpy(), predictor.columns.freq, predictor.horizon)
    rows = check_future(ahead, last.index.to_numpy(), dates, predictor.encoder.spec.future,
                        predictor.horizon)
    return rows.assign(**{Y: float("nan")})
