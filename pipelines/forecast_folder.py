"""A forecast written as a folder of Parquet files, one per shard, committed atomically.

``--output forecasts/tonight`` (a name without an extension, or ending in ``/``) makes the
batch forecast write ``part-00000.parquet`` ... into a staging folder beside it
(``.tonight.staging-PID``), then ``_manifest.json`` (parts, rows, model) last, then swap it
in: the old folder is renamed aside, the new one renamed into place, the old one deleted.
A reader sees last night's complete folder, tonight's complete folder, or (for the instant
between the two renames) none: never half of one. pyarrow, pandas, Spark and DuckDB skip
``_``-prefixed files, so ``pd.read_parquet("forecasts/tonight")`` reads the forecast.

A folder is replaced only when it is empty or holds a deepcast forecast and nothing else
(its manifest and the parts it lists): nothing else the user keeps there is ever deleted.
What a file browser leaves in a folder it showed (``.DS_Store``, ``._*``, ``Thumbs.db``,
``desktop.ini``) is not the user's: it does not stop the swap and goes with the folder.
A run killed mid-way leaves its staging folder, removed by the next run once its process is
gone; a run killed between the two renames leaves the old folder aside, which the next run
puts back first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from deepcast.features.errors import ConfigError, RunFailed

MANIFEST = "_manifest.json"
PART = "part-{:05d}.parquet"
WRITER = "deepcast"  # the manifest's "writer": what may replace the folder
BROWSER_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})  # macOS, Windows


def is_folder_output(output: str | os.PathLike | None) -> bool:
    """Whether ``--output`` asks for a folder: no extension, or a trailing ``/``."""
    if output is None or str(output).startswith("sql://"):
        return False
    text = str(output)
    return text.endswith(("/", os.sep)) or not Path(text).suffix


def check_folder(path: str | os.PathLike) -> Path:
    """The output folder as a Path; a ConfigError before any work when it is a file, holds
    files deepcast did not write, or its parent is not writable."""
    path = Path(path)
    restore_aside(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {path} is a file, not a folder",
                          hint="give a folder name, or a .csv/.parquet file name")
    if path.is_dir() and (contents := _contents(path)):
        _check_ours(path, contents)
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--output {path}: the folder {parent} is not writable",
                          hint="choose a folder you can write to, or fix its permissions")
    return path


def _check_ours(path: Path, contents: list[Path]) -> None:
    """ConfigError unless the non-empty folder ``path`` (its ``contents``, a file
    browser's metadata left out) holds a deepcast forecast and nothing else: a deepcast
    manifest (its keys, its parts' names) and exactly the files it lists. A folder
    replaced as a whole must not take anyone's other files with it."""
    what = f"--output {path} is a folder that deepcast did not write"
    hint = "give a new or empty folder, or move the other files out: nothing else is deleted"
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        parts = {p["file"] for p in manifest["parts"]}
        ours = manifest.get("writer", WRITER) == WRITER and {"pipeline", "model_version",
                                                             "rows"} <= manifest.keys()
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{what} (no deepcast {MANIFEST}); a forecast replaces its folder "
                          "as a whole", hint=hint) from None
    if not ours or not all(isinstance(f, str) and _is_part(f) for f in parts):
        raise ConfigError(f"{what}: its {MANIFEST} is not a deepcast forecast's", hint=hint)
    others = sorted(p.name + ("/" if p.is_dir() else "") for p in contents
                    if p.name != MANIFEST and p.name not in parts)
    if others:
        raise ConfigError(f"--output {path} holds files that are not part of the forecast "
                          f"deepcast wrote there: {', '.join(others[:5])}"
                          f"{' ...' if len(others) > 5 else ''}; a forecast replaces its "
                          "folder as a whole", hint=hint)


def _contents(path: Path) -> list[Path]:
    """What the folder ``path`` holds, without a file browser's metadata files."""
    return [p for p in path.iterdir() if p.name not in BROWSER_FILES
            and not (p.name.startswith("._") and p.is_file())]


def _is_part(name: str) -> bool:
    """A part file's name as :data:`PART` writes it."""
    stem = name.removeprefix("part-").removesuffix(".parquet")
    return name.startswith("part-") and name.endswith(".parquet") and stem.isdigit()


def staging_folder(path: Path) -> Path:
    """A new, empty staging folder beside ``path`` (staging folders of dead runs removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead(path)
    staging = path.with_name(f".{path.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def write_manifest(staging: Path, payload: dict[str, Any]) -> None:
    """The manifest, fsynced: written last, it marks the folder complete. Whatever else is
    in the staging folder (a killed worker's temporary part) is removed first, so the
    folder holds exactly what the manifest lists and the next night may replace it."""
    listed = {p["file"] for p in payload.get("parts", ())}
    for entry in staging.iterdir():
        if entry.name in listed:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    tmp = staging / f".{MANIFEST}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, staging / MANIFEST)


def commit(staging: Path, path: Path) -> None:
    """Swap the complete staging folder in for ``path`` (see the module docstring)."""
    aside = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.is_dir() and (contents := _contents(path)):
        # again: a file added while the shards ran is not deleted either
        _check_ours(path, contents)
    try:
        if path.exists():
            os.replace(path, aside)
        os.replace(staging, path)
    except OSError as exc:
        if aside.exists() and not path.exists():
            os.replace(aside, path)
        raise RunFailed(f"committing the forecast folder {path} failed: "
                        f"{exc.strerror or exc}", hint="check the folder's permissions; "
                        "the previous forecast is intact") from None
    shutil.rmtree(aside, ignore_errors=True)


def discard(staging: Path) -> None:
    """Remove a staging folder (a failed run leaves nothing behind)."""
    shutil.rmtree(staging, ignore_errors=True)


def restore_aside(path: Path) -> None:
    """Put back a folder set aside by a run that died between the two renames."""
    if path.exists():
        return
    for aside in sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.is_dir() \
            else []:
        if _dead(aside.name.rsplit("-", 1)[-1]) and (aside / MANIFEST).is_file():
            os.replace(aside, path)
            return


def remove_dead(path: Path) -> list[Path]:
    """Delete staging and set-aside folders of ``path`` left by runs that died."""
    restore_aside(path)
    removed = []
    for kind in ("staging", "old"):
        for folder in path.parent.glob(f".{path.name}.{kind}-*"):
            if _dead(folder.name.rsplit("-", 1)[-1]):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _dead(pid: str) -> bool:
    from deepcast.pipelines.locks import process_alive

    return pid.isdigit() and not process_alive(int(pid))
