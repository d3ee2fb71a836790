"""Commit tokens: written by write transactions only, the proof a lost acknowledgement is
resolved with, and pruned."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError

from neonpro.adapters.db import deadline as request_deadline
from neonpro.adapters.db.housekeeping import prune_expired
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.vocabulary import AuditAction
from neonpro.services import clinics
from tests.sessions import owner_sql

ADMIN = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000f1"), "admin")


@pytest.fixture
def clinic(container: Container) -> uuid.UUID:
    return clinics.create_clinic(container.service_uow(ADMIN), ClinicCreate(name="Fichas")).id


def _sql(box: Container, query: str, *args: Any) -> Any:
    return owner_sql(box.database, query, *args)


def _tokens(box: Container, clinic: uuid.UUID) -> int:
    return int(_sql(box, "SELECT count(*) FROM commit_tokens WHERE clinic_id = %s", clinic)[0])


def test_a_transaction_leaves_a_token_unless_its_read_is_retried_whole(
        container: Container, clinic: uuid.UUID) -> None:
    """Binding the context (the first statement) assigns the transaction an id, so every
    bound transaction can have written and leaves its token; a read the API retries whole
    if its connection breaks needs none, even audited."""
    with container.uow(clinic, ADMIN) as tx:
        tx.connection.execute(text("INSERT INTO service_types (clinic_id, name, "
                                   "duration_minutes) VALUES (:c, 'Ficha', 30)"), {"c": clinic})
        tx.commit()
    assert _tokens(container, clinic) == 1
    with container.uow(clinic, ADMIN) as tx:
        tx.connection.execute(text("SELECT count(*) FROM patients"))
        tx.commit()
    assert _tokens(container, clinic) == 2
    token = request_deadline.current.set(request_deadline.Deadline(30, retried=True))
    try:
        with container.uow(clinic, ADMIN) as tx:
            tx.audit.record(AuditAction.VIEW, "patients")
            tx.commit()
    finally:
        request_deadline.current.reset(token)
    assert _tokens(container, clinic) == 2


class _BrokenBeforeCommit:
    """The network breaks before COMMIT reaches the server: the server still holds the
    transaction open (idle in transaction), and the client sees a broken connection."""

    def __init__(self, real: Any) -> None:
        self.real = real

    @property
    def is_active(self) -> bool:
        return False

    def commit(self) -> None:
        raise OperationalError("COMMIT", {}, psycopg.OperationalError(
            "server closed the connection unexpectedly"), connection_invalidated=True)

    def rollback(self) -> None:
        return


def test_a_transaction_the_server_still_holds_open_is_ended_then_reported_failed(
        container: Container, clinic: uuid.UUID) -> None:
    name = f"Nunca chegou {uuid.uuid4().hex[:6]}"
    with pytest.raises(OperationalError), container.uow(clinic, ADMIN) as tx:
        tx.connection.execute(text("INSERT INTO service_types (clinic_id, name, "
                                   "duration_minutes) VALUES (:c, :n, 30)"),
                              {"c": clinic, "n": name})
        pid = tx.connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        tx._transaction = _BrokenBeforeCommit(tx._transaction)  # type: ignore[assignment]
        tx.commit()
    # its backend was terminated (its locks released), and nothing was kept
    assert _sql(container, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                pid) == (0,)
    assert _sql(container, "SELECT count(*) FROM service_types WHERE name = %s", name) == (0,)


def test_prune_keeps_what_is_still_needed(container: Container, clinic: uuid.UUID) -> None:
    old, fresh = uuid.uuid4(), uuid.uuid4()
    _sql(container, "INSERT INTO commit_tokens (clinic_id, token, committed_at) VALUES "
         "(%s, %s, now() - interval '11 minutes'), (%s, %s, now())", clinic, old, clinic, fresh)
    for key, expires in ((b"k-old", "now() - interval '1 second'"), (b"k-new", "now() + "
                                                                      "interval '1 day'")):
        _sql(container, "INSERT INTO idempotency_keys (clinic_id, key_hash, request_hash, "
             "claim, state, server_started, lease_until, expires_at) VALUES (%s, %s, 'x', "
             f"gen_random_uuid(), 'done', now(), now(), {expires})", clinic, key)
    pruned = prune_expired(container.database)
    assert pruned.commit_tokens >= 1
    assert pruned.idempotency_keys >= 1
    left = _sql(container, "SELECT array_agg(token) FROM commit_tokens WHERE clinic_id = %s",
                clinic)[0]
    assert fresh in left
    assert old not in left
    keys = _sql(container, "SELECT array_agg(key_hash) FROM idempotency_keys WHERE "
                "clinic_id = %s", clinic)[0]
    assert [bytes(k) for k in keys] == [b"k-new"]


def test_connections_the_server_dropped_while_pooled_are_replaced(
        container: Container, clinic: uuid.UUID) -> None:
    """The pool pings nothing at checkout: a connection killed while it sat in the pool
    fails its transaction's first statement, before any work, and is replaced; neither a
    unit of work, a session check nor an adapter's transaction sees the failure."""
    def warm() -> None:
        with container.uow(clinic, ADMIN) as tx:
            tx.clinics.get()
        container.session_live("no-such-token", ADMIN.id, clinic, "admin")
        with container.database.transaction("service", None, ADMIN.id) as session:
            session.execute(text("SELECT 1"))

    warm()
    database = make_url(container.database.owner_url).database
    killed = _sql(container, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE datname = %s AND application_name = 'neonpro' "
                  "AND pid <> pg_backend_pid()", database)[0]
    assert killed >= 2
    warm()  # each kind once more: no error reaches the caller
    with container.uow(clinic, ADMIN) as tx:
        assert tx.clinics.get().id == clinic
