"""Reading a pipeline file: YAML (``yaml.safe_load`` only) into a validated
``PipelineConfig``, pydantic errors reworded into messages that name the key, the value and
what is allowed, relative paths resolved against the YAML's folder (and kept inside it or
the project)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from deepcast.features.errors import ConfigError
from deepcast.pipelines.config.safe_yaml import YamlRefused, load_yaml
from deepcast.pipelines.config.schema import PipelineConfig
from deepcast.pipelines.config.schema_models import ENTRY_MODELS, MODEL_TYPES


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed at the parent of ``loc`` (for unknown-key messages)."""
    model: Any = PipelineConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if part in MODEL_TYPES:
            model = ENTRY_MODELS[part]
            continue
        if part == "models":  # the entry's type tag, next in loc, picks the model
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            return []
    return sorted(model.model_fields) if model is not None else []


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid pipeline config {source}:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc if p not in MODEL_TYPES) or "(top level)"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  - {key}: unknown key{hint}")
        elif e["type"] == "union_tag_invalid":
            lines.append(
                f"  - {key}.type: unknown model type {e['input'].get('type')!r}"
                f"; allowed: {', '.join(MODEL_TYPES)}"
                if isinstance(e["input"], dict) else f"  - {key}: {e['msg']}"
            )
        elif e["type"] == "missing":
            lines.append(f"  - {key}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  - {key}: {msg}{_shown(e.get('input'))}")
    return "\n".join(lines)


def _shown(got: Any) -> str:
    """The value received, for a message: none for a mapping or list, a long one cut."""
    if isinstance(got, (dict, list)):
        return ""
    text = repr(got)
    if len(text) > 80:
        text = f"{text[:60]}... ({len(str(got))} characters)"
    return f" (got {text})"


def parse_config(raw: Any, source: str = "", base_dir: Path | None = None) -> PipelineConfig:
    """Validate an already-parsed mapping; resolve relative paths against ``base_dir``."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"pipeline config {source} must be a YAML mapping of keys to values, "
            f"got {type(raw).__name__}",
            hint="start the file with `name:`, `data:`, `features:`, `models:` ... keys",
        )
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source),
                          hint="see the pipeline YAML reference in README.md") from None
    if base_dir is not None and cfg.data.path is not None and not cfg.data.path.is_absolute():
        resolved = (base_dir / cfg.data.path).resolve()
        _check_inside_project(cfg.data.path, resolved, base_dir, source)
        data = cfg.data.model_copy(update={"path": resolved})
        cfg = cfg.model_copy(update={"data": data})
    return cfg


def _check_inside_project(given: Path, resolved: Path, base_dir: Path, source: str) -> None:
    """A relative ``data.path`` may not climb (``..``) out of both the YAML's folder and
    the project (the working directory, home of ./mlruns): a shared pipeline file must not
    reach arbitrary files. An absolute path (or ``--data``) is an explicit choice."""
    roots = (base_dir.resolve(), Path.cwd().resolve())
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ConfigError(
            f"invalid pipeline config {source}: data.path {str(given)!r} resolves to "
            f"{resolved}, outside the pipeline's folder and the project ({roots[1]})",
            hint="move the data into the project, or give an absolute data.path (or --data) "
            "if that file is really meant")


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML file (``yaml.safe_load`` semantics, hardened:
    duplicate keys, deep nesting and alias bombs are refused)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file not found: {path}",
                          hint="pass the path of a pipeline YAML, e.g. pipelines/demo.yaml")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file", hint="save the YAML as UTF-8") from None
    except YamlRefused as exc:
        raise ConfigError(f"{path}: YAML refused{exc.where}: {exc.problem}",
                          hint=exc.hint) from None
    except RecursionError:  # a safety net: the loader caps nesting well before this
        raise ConfigError(f"{path}: YAML nests too deeply to be read",
                          hint="a pipeline file nests a few levels; flatten the structure"
                          ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML could not be parsed{where}: {problem}",
                          hint="fix the YAML syntax; tags such as !!python/object are refused"
                          ) from None
    return parse_config(raw, source=str(path), base_dir=path.parent.resolve())


def override_backtest(cfg: PipelineConfig, n_windows: int | None = None,
                      step: int | None = None, refit: bool | int | None = None
                      ) -> PipelineConfig:
    """``cfg`` with ``evaluation.backtest``'s ``n_windows`` / ``step`` / ``refit`` replaced
    where given (``deepcast backtest --n-windows/--step/--refit``, the API's keywords),
    validated like the YAML: a bad value is a ConfigError naming the key."""
    given = {"n_windows": n_windows, "step": step, "refit": refit}
    over = {k: v for k, v in given.items() if v is not None}
    if not over:
        return cfg
    raw = cfg.model_dump()
    # the bands are calibrated as train would calibrate them under the YAML's own windows
    raw["evaluation"]["backtest"].update(over, calibration_windows=cfg.calibration_windows)
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, "(backtest options)"),
                          hint="--n-windows and --step take integers >= 1, --refit true, "
                          "false or an integer k >= 1") from None


def resolved_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as plain JSON-able data (defaults filled in), for tracking."""
    return cfg.model_dump(mode="json")
