"""Everything MLflow, and the only home of ``mlflow`` imports in deepcast.

- :mod:`.store`: where the store is, its client and experiment; closing runs of killed
  processes.
- :mod:`.writer`: :class:`Tracker`, the run writer the stages receive (runs, params,
  metrics, tags, artifacts, the logged model), with ``.registry`` and ``.history``.
- :mod:`.registry`: :class:`Registry`, versions, aliases and verified loading.
- :mod:`.loader`: what makes a model deepcast's; loading from the bundle, never the script.
- :mod:`.history`: :class:`History`, runs and versions read back as tables and reports.
- :mod:`.model`: the pyfunc class and its models-from-code entry scripts.
- :mod:`.datasets`: the data a run used, as MLflow datasets (metadata only).
- :mod:`.tags`: every ``deepcast.*`` tag key.

Names are loaded on first use, so ``from deepcast.pipelines.tracking import tags`` costs no
MLflow import; ``DeepcastModel`` stays importable from here (the entry script of every
logged model names it so).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Tracker": "writer",
    "Registry": "registry",
    "ModelVersionRef": "registry",
    "CHAMPION": "registry",
    "CHALLENGER": "registry",
    "History": "history",
    "LoadedModel": "loader",
    "Store": "store",
    "default_store": "store",
    "store_failed": "store",
    "tracking_uri": "store",
    "DeepcastModel": "model",
    "LoggedModelRef": "writer",
    "RunDataset": "datasets",
    "run_datasets": "datasets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
