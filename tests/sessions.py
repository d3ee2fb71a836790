"""Committing transactions for tests' setup and inspection: the block's work is committed
when it ends normally (rolled back on an exception). The product has no such thing: its
services commit through the unit of work and its adapters call ``commit()`` in sight
(``Database.transaction``); these are shorthand for arranging a test's world."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url, text

from neonpro.adapters.db.database import Database


@contextmanager
def _committing(db: Database, kind: str, clinic_id: uuid.UUID | None, actor_id: uuid.UUID,
                actor_role: str, *, read_only: bool = False) -> Iterator[Any]:
    with db.transaction(kind, clinic_id, actor_id, actor_role, read_only=read_only) as session:
        yield session
        session.commit()


def tenant_session(db: Database, clinic_id: uuid.UUID, actor_id: uuid.UUID,
                   actor_role: str = "system") -> Any:
    """One committing transaction in ``clinic_id`` as the application role (RLS applies)."""
    return _committing(db, "app", clinic_id, actor_id, actor_role)


def service_session(db: Database, actor_id: uuid.UUID, actor_role: str = "system",
                    clinic_id: uuid.UUID | None = None) -> Any:
    """One committing cross-clinic transaction as the service role (BYPASSRLS)."""
    return _committing(db, "service", clinic_id, actor_id, actor_role)


def read_only_session(db: Database, clinic_id: uuid.UUID, actor_id: uuid.UUID,
                      actor_role: str = "system") -> Any:
    """A read-only tenant transaction on the replica (the primary if none is set)."""
    return _committing(db, "replica", clinic_id, actor_id, actor_role, read_only=True)


def owner_sql(db: Database, query: str, *args: Any) -> Any:
    """One statement on a new autocommit connection of the owner's login, outside the pools
    (so it survives what a test does to them): the first row, or the row count."""
    url = make_url(db.owner_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        cursor = conn.execute(query, args)
        return cursor.fetchone() if cursor.description else cursor.rowcount


def set_clinic(conn: psycopg.Connection[Any], clinic_id: uuid.UUID) -> None:
    """Set a raw transaction's clinic by hand, as SQL running as the application could: with
    ``set_config`` on one server; on Citus with ``SET LOCAL``, which reaches the workers
    (``set_config`` does not: there a tenant would see nothing, tests/citus)."""
    from tests.conftest import CITUS  # noqa: PLC0415  (conftest imports the fixtures' modules)

    if CITUS:
        conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
        conn.execute(sql.SQL("SET LOCAL app.clinic_id = {}").format(str(clinic_id)))
    else:
        conn.execute("SELECT set_config('app.clinic_id', %s, true)", (str(clinic_id),))


def replica_role(conn: Any) -> None:
    """Skip ordinary triggers for the rest of a superuser's transaction (``conn``: a SQLAlchemy
    connection), as ``pg_restore`` loads rows: ``session_replication_role = replica``, sent
    on to the workers on Citus."""
    from tests.conftest import CITUS  # noqa: PLC0415

    if CITUS:
        conn.execute(text("SET LOCAL citus.propagate_set_commands = 'local'"))
    conn.execute(text("SET LOCAL session_replication_role = replica"))
