"""A database error is logged so an operator can find it: the constraint, the statement's
origin (repository class and method) and the SQLSTATE, never the values it carried.

Before: the API logged ``CardinalityViolation sqlstate=21000`` and nothing else for a
subquery that returned two rows, and no one could tell which statement it was."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.entrypoints.api.app import create_app
from neonpro.entrypoints.cli._common import explain
from neonpro.services import clinics, patients
from tests.conftest import make_keyring, make_settings

ME = Actor(uuid.uuid4(), "admin")
RECORD_NUMBER = "PRONTUARIO-SIGILO-77"  # a value the driver's DETAIL would repeat
NAME = "Valentina Registro Duplicado"
TWO_ROWS = "SELECT (SELECT n FROM generate_series(1, 2) n WHERE CAST(:marker AS text) IS NOT NULL)"


class ProbeRepository(SqlRepository):
    """A repository with one broken statement: a scalar subquery that returns two rows
    (what the booking's uncorrelated risk-score subquery did)."""

    __slots__ = ()

    def broken(self) -> Any:
        return self._helper()

    def _helper(self) -> Any:
        return self._execute(text(TWO_ROWS), {"marker": RECORD_NUMBER}).scalar()


@pytest.fixture(scope="module")
def clinic(container: Container) -> uuid.UUID:
    return clinics.create_clinic(container.service_uow(ME),
                                 ClinicCreate(name="Clinica Dos Logs")).id


def _db_errors(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "db_error"]


def _assert_no_values(entry: dict[str, Any]) -> None:
    rendered = json.dumps(entry, default=str)
    assert RECORD_NUMBER not in rendered
    assert NAME.split()[0] not in rendered


def test_a_constraint_violation_names_constraint_origin_and_sqlstate(
        container: Container, clinic: uuid.UUID) -> None:
    data = PatientCreate(full_name=NAME, medical_record_number=RECORD_NUMBER)
    patients.register_patient(container.uow(clinic, ME), data)
    with capture_logs() as logs, pytest.raises(Conflict):
        patients.register_patient(container.uow(clinic, ME), data)
    [entry] = _db_errors(logs)
    assert entry["constraint"] == "uq_patients_clinic_id_medical_record_number"
    assert entry["sqlstate"] == "23505"
    assert entry["origin"] == "SqlPatientRepository.add"
    assert entry["error"] == "conflict"
    assert entry["db_error"] == "UniqueViolation"
    _assert_no_values(entry)


def test_an_unexpected_error_names_its_origin(container: Container, clinic: uuid.UUID) -> None:
    with capture_logs() as logs, pytest.raises(DBAPIError) as raised, \
            container.uow(clinic, ME) as tx:
        ProbeRepository(tx).broken()
    [entry] = _db_errors(logs)
    assert entry["sqlstate"] == "21000"
    assert entry["db_error"] == "CardinalityViolation"
    assert entry["origin"] == "ProbeRepository.broken/_helper"
    assert entry["error"] == "untranslated"
    assert entry["constraint"] is None
    _assert_no_values(entry)
    # the CLI's one line says the same, and nothing of the statement's values
    message, status = explain(raised.value) or ("", 0)
    assert status == 1
    assert "CardinalityViolation" in message
    assert "21000" in message
    assert "ProbeRepository.broken" in message
    assert RECORD_NUMBER not in message


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[tuple[TestClient, Container]]:
    box = Container(make_settings(database_url, jwt_secret="x" * 32), database_url=database_url,
                    keyring=make_keyring())
    app = create_app(box)

    def probe() -> None:
        with box.uow(uuid.uuid4(), ME) as tx:
            ProbeRepository(tx).broken()

    app.add_api_route("/probe-broken-statement", probe)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, box
    finally:
        box.close()


def test_the_api_logs_the_origin_of_a_500(api: tuple[TestClient, Container]) -> None:
    client, _box = api
    with capture_logs() as logs:
        response = client.get("/probe-broken-statement")
    assert response.status_code == 500
    assert RECORD_NUMBER not in response.text
    unhandled = [e for e in _db_errors(logs) if e.get("error") == "unhandled"]
    assert len(unhandled) == 1, logs
    [entry] = unhandled
    assert entry["log_level"] == "error"
    assert entry["sqlstate"] == "21000"
    assert entry["origin"] == "ProbeRepository.broken/_helper"
    _assert_no_values(entry)


def test_a_statement_outside_the_repositories_is_found_by_its_traceback(
        container: Container, clinic: uuid.UUID) -> None:
    def count_twice() -> None:
        with container.uow(clinic, ME) as tx:
            tx.connection.execute(text(TWO_ROWS), {"marker": RECORD_NUMBER})

    with pytest.raises(DBAPIError) as raised:
        count_twice()
    message, _status = explain(raised.value) or ("", 0)
    assert "count_twice" in message, message
