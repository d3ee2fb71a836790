"""Appointment notifications go to each clinic's own channel, one the application's login
cannot name. Adversary: SQL on the application's login, LISTENing for another clinic's
changes (the review received every clinic's notifications, patient ids included)."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from psycopg import sql

from neonpro.adapters.db.database import Database
from tests.factories import ACTOR, seed_clinic, seed_world
from tests.sessions import service_session


def _dsn(db: Database, kind: str) -> str:
    return db.url_for(kind).replace("postgresql+psycopg://", "postgresql://")


def _drain(conn: psycopg.Connection[object], seconds: float = 1.0) -> list[psycopg.Notify]:
    got: list[psycopg.Notify] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += list(conn.notifies(timeout=0.1))
    return got


def _booked(db: Database) -> uuid.UUID:
    """A new clinic whose seed books an appointment (a notification at commit)."""
    with service_session(db, ACTOR) as session:
        clinic = seed_clinic(session, "Feed")
        seed_world(session, clinic)
    return clinic


def test_a_clinic_change_reaches_only_that_clinics_channel(db: Database) -> None:
    with service_session(db, ACTOR) as session:
        other = seed_clinic(session, "Feed other")
    with psycopg.connect(_dsn(db, "service"), autocommit=True) as service, \
            psycopg.connect(_dsn(db, "app"), autocommit=True) as app:
        # the application's login on the channel everyone used to share, and on a
        # guessed per-clinic name
        app.execute("LISTEN neonpro_appointments")
        app.execute("LISTEN neonpro_feed_")
        row = service.execute("SELECT neonpro_feed_channel(%s)", (other,)).fetchone()
        assert row is not None
        others = str(row[0])
        service.execute(sql.SQL("LISTEN {}").format(sql.Identifier(others)))
        clinic = _booked(db)
        row = service.execute("SELECT neonpro_feed_channel(%s)", (clinic,)).fetchone()
        assert row is not None
        assert row[0] != others
        assert len(row[0]) == len("neonpro_feed_") + 32
        assert str(clinic) not in row[0]  # not derivable from the clinic id without the key
        heard_app = _drain(app, 0.5)
        heard_service = _drain(service, 0.5)
    assert heard_app == []
    assert heard_service == []  # the booking was another clinic's: not on this channel


def test_the_service_hears_its_clinics_channel(db: Database) -> None:
    with psycopg.connect(_dsn(db, "service"), autocommit=True) as service:
        with service_session(db, ACTOR) as session:
            clinic = seed_clinic(session, "Feed heard")
        row = service.execute("SELECT neonpro_feed_channel(%s)", (clinic,)).fetchone()
        assert row is not None
        service.execute(sql.SQL("LISTEN {}").format(sql.Identifier(row[0])))
        with service_session(db, ACTOR) as session:
            seed_world(session, clinic)
        heard = _drain(service, 2.0)
    assert heard
    assert all(f'"clinic_id" : "{clinic}"' in n.payload for n in heard), heard


def test_the_application_login_cannot_learn_a_channel(db: Database) -> None:
    clinic = _booked(db)
    with psycopg.connect(_dsn(db, "service"), autocommit=True) as service:
        row = service.execute("SELECT neonpro_feed_channel(%s)", (clinic,)).fetchone()
        assert row is not None
        service.execute(sql.SQL("LISTEN {}").format(sql.Identifier(row[0])))
        with psycopg.connect(_dsn(db, "app")) as app:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("SELECT neonpro_feed_channel(%s)", (clinic,))
            app.rollback()
            # the service's LISTEN statement is not shown to another role
            seen = app.execute("SELECT query FROM pg_stat_activity WHERE usename = %s",
                               (db.roles.service,)).fetchall()
    assert seen
    assert all(row[0] == "<insufficient privilege>" for row in seen)
