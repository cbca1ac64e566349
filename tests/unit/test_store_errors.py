"""Which tracking-store errors mean "another process created it first" (then a second try
links what exists): MLflow's RESOURCE_ALREADY_EXISTS, and the SQL store's unique-key
violation that reaches the caller unwrapped in a race of two trains (seen in a fresh-clone
suite); other integrity errors and other MLflow errors are not."""

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS
from sqlalchemy.exc import IntegrityError

from deepcast.pipelines.tracking.store import already_exists


@pytest.mark.parametrize(("exc", "expected"), [
    (MlflowException("exists", error_code=RESOURCE_ALREADY_EXISTS), True),
    (MlflowException("bad", error_code=INVALID_PARAMETER_VALUE), False),
    (IntegrityError("INSERT", {}, Exception(
        "UNIQUE constraint failed: datasets.experiment_id, datasets.name")), True),
    (IntegrityError("INSERT", {}, Exception(
        'duplicate key value violates unique constraint "dataset_pk"')), True),
    (IntegrityError("INSERT", {}, Exception("NOT NULL constraint failed: runs.name")), False),
    (RuntimeError("UNIQUE constraint failed"), False),
])
def test_already_exists(exc, expected):
    assert already_exists(exc) is expected
