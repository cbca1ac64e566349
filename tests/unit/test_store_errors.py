"""Which tracking-store errors mean "another process created it first" (then a second try
links what exists): MLflow's RESOURCE_ALREADY_EXISTS, and the SQL store's unique-key
violation that reaches the caller in a race of two trains, bare (seen in a fresh-clone
suite) or wrapped by MLflow's managed session in a BAD_REQUEST (seen in CI); other
integrity errors and other MLflow errors are not."""

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
)
from sqlalchemy.exc import IntegrityError

from deepcast.pipelines.tracking.store import already_exists


def _wrapped(cause: Exception) -> MlflowException:
    """What MLflow's ManagedSessionMaker raises for a SQLAlchemy error: the error as the
    message, BAD_REQUEST, and the error as the cause."""
    try:
        raise MlflowException(message=str(cause), error_code=BAD_REQUEST) from cause
    except MlflowException as exc:
        return exc


def _own_cause() -> Exception:
    """``raise e from e``: a cycle of causes (Python breaks cycles of __context__ only)."""
    exc = RuntimeError("UNIQUE constraint failed")
    exc.__cause__ = exc
    return exc


@pytest.mark.parametrize(("exc", "expected"), [
    (MlflowException("exists", error_code=RESOURCE_ALREADY_EXISTS), True),
    (MlflowException("bad", error_code=INVALID_PARAMETER_VALUE), False),
    (IntegrityError("INSERT", {}, Exception(
        "UNIQUE constraint failed: datasets.experiment_id, datasets.name")), True),
    (IntegrityError("INSERT", {}, Exception(
        'duplicate key value violates unique constraint "dataset_pk"')), True),
    (IntegrityError("INSERT", {}, Exception("NOT NULL constraint failed: runs.name")), False),
    (RuntimeError("UNIQUE constraint failed"), False),
    (_wrapped(IntegrityError("INSERT", {}, Exception(
        "UNIQUE constraint failed: datasets.experiment_id, datasets.name"))), True),
    (_wrapped(IntegrityError("INSERT", {}, Exception("NOT NULL constraint failed"))), False),
    (MlflowException("UNIQUE constraint failed", error_code=BAD_REQUEST), False),
    (_own_cause(), False),  # ends (a loop over causes must not spin on a cycle)
])
def test_already_exists(exc, expected):
    assert already_exists(exc) is expected
