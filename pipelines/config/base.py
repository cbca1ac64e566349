"""What every section of the pipeline schema shares: the strict base model and the rule
for names (pipeline, model, ensemble) that become MLflow names and file names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
