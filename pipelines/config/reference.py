"""The README's pipeline YAML reference, generated from the pydantic models so the
documentation cannot drift from what is validated (``python -m deepcast.pipelines.config``
prints it; a test compares it with README.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from deepcast.forecasting.models import families
from deepcast.pipelines.config.auto import AutoConfig
from deepcast.pipelines.config.schema_data import DataConfig, FeaturesConfig, SqlSource
from deepcast.pipelines.config.schema_models import ENTRY_MODELS, EnsembleConfig, TuneConfig
from deepcast.pipelines.config.schema_run import (
    BacktestConfig,
    DriftConfig,
    EvaluationConfig,
    ExecutionConfig,
    PromotionConfig,
    TrainingConfig,
)


def _default(field: Any) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def reference_markdown() -> str:
    """The README's model and training reference, generated from the pydantic models so the
    documentation cannot drift from what is validated (a test compares the two)."""
    rows = ["| `type` | what | covariates | options |", "|---|---|---|---|"]
    options: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for family, entry in ENTRY_MODELS.items():
        cls = families()[family]
        names = [n for n in entry.model_fields if n not in ("type", "name")]
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")
        uses = ", ".join(sorted(cls.covariates)) or "—"
        rows.append(f"| `{family}` | {doc} | {uses} | "
                    f"{', '.join(f'`{n}`' for n in names) or '—'} |")
        for n in names:
            f = entry.model_fields[n]
            key = (n, f.description or "")
            options.setdefault(key, (_default(f), []))[1].append(f"`{family}`")
    rows += ["", "| option | default | families | meaning |", "|---|---|---|---|"]
    for (n, desc), (default, fams) in sorted(options.items()):
        rows.append(f"| `{n}` | {default} | {', '.join(fams)} | {desc} |")
    for section, model in (("data", DataConfig), ("data.sql", SqlSource),
                           ("features", FeaturesConfig),
                           ("training", TrainingConfig), ("evaluation", EvaluationConfig),
                           ("evaluation.backtest", BacktestConfig),
                           ("promotion", PromotionConfig), ("drift", DriftConfig),
                           ("ensemble[]", EnsembleConfig), ("auto", AutoConfig),
                           ("tune", TuneConfig), ("execution", ExecutionConfig)):
        rows += ["", f"| `{section}:` key | default | meaning |", "|---|---|---|"]
        for n, f in model.model_fields.items():
            default = "required" if f.is_required() else _default(f)
            rows.append(f"| `{n}` | {default} | {f.description} |")
    return "\n".join(rows) + "\n"

