"""The family registry: ``models[].type`` name -> :class:`Forecaster` subclass.

Kept apart from the contract (``base.py``): families import the contract and this
registry, and neither imports a family. The built-in families register themselves when
``deepcast.forecasting.models`` is imported, and that package re-exports
:func:`families`, :func:`build_forecaster` and :func:`load_forecaster`: import them from
there to have the built-ins in the table (here they see what is registered so far, which
is what an ensemble needs to load its members: their families registered the ensemble's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepcast.forecasting.base import FORECASTER_FILE, Forecaster, InputSpec, WindowSpec

_FAMILIES: dict[str, type[Forecaster]] = {}


def register_family(name: str) -> Callable[[type[Forecaster]], type[Forecaster]]:
    """Class decorator: make a forecaster family available as ``models[].type: name``."""

    def _add(cls: type[Forecaster]) -> type[Forecaster]:
        if name in _FAMILIES and _FAMILIES[name] is not cls:
            raise ValueError(f"forecaster family {name!r} registered twice")
        cls.family = name
        _FAMILIES[name] = cls
        return cls

    return _add


def families() -> dict[str, type[Forecaster]]:
    """The registered families (every built-in one once ``forecasting.models`` is in)."""
    return dict(_FAMILIES)


def build_forecaster(family: str, name: str, spec: WindowSpec, options: dict[str, Any],
                     inputs: InputSpec | None = None) -> Forecaster:
    """Instantiate a registered family by name."""
    table = families()
    if family not in table:
        raise ValueError(f"unknown model type {family!r}; known: {', '.join(sorted(table))} "
                         "(import deepcast.forecasting.models for the built-in families)")
    return table[family](name=name, spec=spec, options=dict(options),
                         inputs=inputs or InputSpec())


def load_forecaster(path: str | Path) -> Forecaster:
    """Load a forecaster saved with :meth:`Forecaster.save` (Keras: safe_mode=True)."""
    path = Path(path)
    meta = json.loads((path / FORECASTER_FILE).read_text())
    f = build_forecaster(meta["family"], meta["name"], WindowSpec(**meta["spec"]),
                         meta["options"], InputSpec(**meta.get("inputs", {})))
    f._load_weights(path)
    return f
