"""Hot statements (adapters/db/hot.py): the same rows, errors and connection handling as
``Connection.execute``, on the driver's cursor."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import bindparam, event, make_url, select, text
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.db import hot as hot_module
from neonpro.adapters.db.hot import HotStatement
from neonpro.adapters.db.repositories import patient as patient_sql
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import clinics, patients
from tests.sessions import owner_sql
from tests.valid import cns, cpf

ADMIN = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000f2"), "admin")


@pytest.fixture
def clinic(container: Container) -> uuid.UUID:
    return clinics.create_clinic(container.service_uow(ADMIN), ClinicCreate(name="Quente")).id


def test_a_hot_select_gives_the_rows_sqlalchemy_gives(
        container: Container, clinic: uuid.UUID) -> None:
    """Every column type of the patient (arrays, bytea, enums, dates, JSON) comes back as
    ``Connection.execute`` maps it: the column types' result processors run."""
    created = patients.register_patient(container.uow(clinic, ADMIN), PatientCreate(
        full_name="Ana Quente", cpf=cpf(7), cns=cns(7), birth_date="1990-01-02",
        phone_primary="11987654321", allergies=["látex"], patient_notes="asma",
        blood_type="o+"))  # type: ignore[arg-type]
    params = {"b_clinic": clinic, "b_id": created.id}
    hot = patient_sql.GET
    with container.uow(clinic, ADMIN) as tx:
        ours = hot.rows(tx.connection, params)
        theirs = [dict(r._mapping) for r in tx.connection.execute(hot.statement, params)]
    assert ours == theirs
    assert len(ours) == 1
    assert ours[0]["allergies"] == ["látex"]
    assert {type(v) for v in ours[0].values()} == {type(v) for v in theirs[0].values()}


def test_a_failing_hot_statement_raises_what_sqlalchemy_raises(
        container: Container, clinic: uuid.UUID) -> None:
    """A driver error arrives as SQLAlchemy's ``DBAPIError`` (the repositories translate and
    log those), the connection is not invalidated by it, and rolling back keeps it usable."""
    broken = HotStatement(text("SELECT 1 / CAST(:zero AS int)"))
    with container.uow(clinic, ADMIN) as tx:
        with pytest.raises(DBAPIError) as caught:
            broken.scalar(tx.connection, {"zero": 0})
        assert isinstance(caught.value.orig, psycopg.errors.DivisionByZero)
        assert not caught.value.connection_invalidated
        tx.rollback()
    with container.uow(clinic, ADMIN) as tx:
        assert HotStatement(text("SELECT CAST(:n AS int) + 1")).scalar(tx.connection, {"n": 1}) == 2


def test_a_hot_statement_refuses_sql_that_changes_per_call(container: Container,
                                                            clinic: uuid.UUID) -> None:
    expanding = HotStatement(select(patient_sql.T.id).where(
        patient_sql.T.id.in_(bindparam("ids", expanding=True))))
    with container.uow(clinic, ADMIN) as tx, pytest.raises(ValueError, match="expanding"):
        expanding.rows(tx.connection, {"ids": [uuid.uuid4()]})


def test_every_dropped_pooled_connection_is_replaced(container: Container,
                                                     clinic: uuid.UUID) -> None:
    """The adversary: a server restart (every pooled connection killed at once). The first
    transaction's context statement fails on the driver; SQLAlchemy's handler invalidates the
    whole pool, so its retry, and every later transaction, gets a new connection."""
    held = 3
    ready, release = threading.Barrier(held + 1), threading.Event()

    def hold() -> None:  # three app connections in the pool at once
        with container.uow(clinic, ADMIN) as tx:
            tx.clinics.get()
            ready.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(held)]
    for t in threads:
        t.start()
    ready.wait()
    release.set()
    for t in threads:
        t.join()
    database = make_url(container.database.owner_url).database
    # the application login's connections only: other tests' engines (the owner's) are
    # not this test's subject
    killed = owner_sql(container.database, "SELECT count(pg_terminate_backend(pid)) FROM "
                        "pg_stat_activity WHERE datname = %s AND application_name = 'neonpro'"
                        " AND usename = %s", database, container.database.roles.app)[0]
    assert killed >= held
    for _ in range(held + 1):
        with container.uow(clinic, ADMIN) as tx:
            assert tx.clinics.get().id == clinic


def test_engine_listeners_see_hot_statements(container: Container, clinic: uuid.UUID) -> None:
    """Tracing and statement counters listen on the engine: a hot statement, which
    SQLAlchemy does not execute, is still shown to them, before and after it runs."""
    seen: list[tuple[str, str]] = []
    engine = container.database.engine("app")

    def before(_c: object, _cur: object, sql: str, *_: object) -> None:
        seen.append(("before", sql))

    def after(_c: object, _cur: object, sql: str, *_: object) -> None:
        seen.append(("after", sql))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        with container.uow(clinic, ADMIN) as tx:
            assert tx.patients.find(uuid.uuid4()) is None
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    kinds = [k for k, sql in seen if "FROM patients" in sql]
    assert kinds == ["before", "after"]
    assert any("neonpro_bind_context" in sql for _, sql in seen)


def test_a_hot_statement_names_the_parameters_it_lacks(container: Container,
                                                       clinic: uuid.UUID) -> None:
    with container.uow(clinic, ADMIN) as tx, pytest.raises(ValueError, match="b_id"):
        patient_sql.GET.rows(tx.connection, {"b_clinic": clinic})


def test_a_statement_of_two_logins_is_compiled_once_for_each(
        container: Container, clinic: uuid.UUID, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each login's engine has its own dialect; the tenant context runs on the application's
    and the service's: alternating between them must not compile it again each time."""
    compiled: list[object] = []
    original = hot_module._Compiled

    def counting(statement: Any, dialect: Any) -> Any:
        compiled.append(dialect)
        return original(statement, dialect)

    monkeypatch.setattr(hot_module, "_Compiled", counting)
    hot = HotStatement(text("SELECT CAST(:n AS int)"))
    for n in range(3):
        with container.uow(clinic, ADMIN) as tx:
            assert hot.scalar(tx.connection, {"n": n}) == n
        with container.service_uow(ADMIN) as tx:
            assert hot.scalar(tx.connection, {"n": n}) == n
    assert len(compiled) == 2  # once for each login's dialect


def test_a_failed_statement_names_no_parameter_value(container: Container,
                                                     clinic: uuid.UUID) -> None:
    """A driver error's text carries the statement, never its values (a patient's name in a
    search, say), on the hot path and on SQLAlchemy's alike: an untranslated error may be
    logged or shown by whoever catches it."""
    marker = "Maria Marcadora da Silva"
    sql = "SELECT CAST(:marker AS text) || CAST(1 / CAST(:zero AS int) AS text)"
    params = {"marker": marker, "zero": 0}
    with container.uow(clinic, ADMIN) as tx, pytest.raises(DBAPIError) as hot:
        HotStatement(text(sql)).scalar(tx.connection, params)
    with container.uow(clinic, ADMIN) as tx, pytest.raises(DBAPIError) as plain:
        tx.connection.execute(text(sql), params)
    for caught in (hot, plain):
        assert isinstance(caught.value.orig, psycopg.errors.DivisionByZero)
        assert marker not in str(caught.value)
