"""deepcast's MLflow model: the pyfunc class and the models-from-code scripts that name it.

A model is logged as "models from code": MLflow stores :data:`PYFUNC_ENTRY` with the model
and, when MLflow itself loads it (``mlflow models serve``, ``mlflow.pyfunc.load_model``),
runs that script; no pickled Python object is ever written. deepcast's own loader
(:mod:`.loader`) never runs the stored script: it checks that the script is one of
:data:`KNOWN_ENTRIES` and builds the predictor from the bundle artifact.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

MODEL_ARTIFACT = "model"  # the logged model's name when the predictor has none
BUNDLE_KEY = "bundle"  # the pyfunc artifact holding the Predictor's saved bundle
ENTRY_FILE = "deepcast_model.py"

PYFUNC_ENTRY = """\
from mlflow.models import set_model

from deepcast.pipelines.tracking import DeepcastModel

set_model(DeepcastModel())
"""

# logged before the folders were installed as ``deepcast.*`` (no longer importable as
# such, but their bundles load through deepcast's loader)
LEGACY_PYFUNC_ENTRY = """\
from mlflow.models import set_model

from pipelines.tracking import DeepcastModel

set_model(DeepcastModel())
"""

KNOWN_ENTRIES = (PYFUNC_ENTRY, LEGACY_PYFUNC_ENTRY)


def forecast_frame(predictor: Any, history_df: pd.DataFrame) -> pd.DataFrame:
    """What a deepcast model's ``predict`` returns: the predictor's forecast of
    ``history_df`` with the ``model_name`` column the forecast file carries."""
    out = predictor.predict(pd.DataFrame(history_df))
    out["model_name"] = predictor.name
    return out


class DeepcastModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: ``predict(history_df)`` returns the forecast frame.

    The artifact ``bundle`` holds the ``.keras`` model (loaded with ``safe_mode=True``),
    the fitted scalers and the window/column spec.
    """

    def load_context(self, context) -> None:
        from deepcast.forecasting.predictor import Predictor

        self.predictor = Predictor.load(context.artifacts[BUNDLE_KEY])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        return forecast_frame(self.predictor, model_input)
