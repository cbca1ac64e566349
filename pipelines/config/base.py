"""What every section of the pipeline schema shares: the strict base model and the rule
for names (pipeline, model, ensemble) that become MLflow names and folder names."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
NAME_MAX = 100  # a name is one path component (checkpoints/NAME/MODEL): far below 255 bytes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_name(value: str) -> str:
    """A pipeline, model or ensemble name: safe as an MLflow name and as one folder name
    (no ``/``, no ``..``, no spaces), at most ``NAME_MAX`` characters."""
    if len(value) > NAME_MAX:
        raise ValueError(f"a name has at most {NAME_MAX} characters")
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError("a name starts with a letter or digit and has only letters, digits, "
                         "'_', '.' and '-' (it names MLflow runs, registry entries and folders)")
    return value


Name = Annotated[str, AfterValidator(check_name)]
