from __future__ import annotations

import psycopg
import psycopg.errors
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from neonpro.adapters.db.database import Database, is_transient, normalise_url
from neonpro.config import Settings


def _settings() -> Settings:
    return Settings(_env_file=None, database_url="postgresql://u@127.0.0.1:1/x",  # type: ignore[call-arg]
                    retry_base_delay_s=0.001)


def test_normalise_url_uses_psycopg3() -> None:
    assert normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"


def test_transient_errors_are_classified() -> None:
    serialization = OperationalError("x", {}, psycopg.errors.SerializationFailure())
    deadlock = OperationalError("x", {}, psycopg.errors.DeadlockDetected())
    lost = OperationalError("x", {}, psycopg.OperationalError("server closed the connection"))
    unique = IntegrityError("x", {}, psycopg.errors.UniqueViolation())
    assert is_transient(serialization)
    assert is_transient(deadlock)
    assert is_transient(lost)
    assert not is_transient(unique)
    assert not is_transient(ValueError())


def test_run_retries_transient_errors_then_succeeds() -> None:
    db = Database(_settings())
    calls = []

    def work() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("x", {}, psycopg.errors.SerializationFailure())
        return "done"

    assert db.run(work) == "done"
    assert len(calls) == 3


def test_run_gives_up_after_the_bound() -> None:
    db = Database(_settings())
    calls = []

    def work() -> None:
        calls.append(1)
        raise OperationalError("x", {}, psycopg.errors.DeadlockDetected())

    with pytest.raises(OperationalError):
        db.run(work)
    assert len(calls) == db.settings.retry_attempts


def test_run_never_retries_constraint_violations() -> None:
    db = Database(_settings())
    calls = []

    def work() -> None:
        calls.append(1)
        raise IntegrityError("x", {}, psycopg.errors.UniqueViolation())

    with pytest.raises(IntegrityError):
        db.run(work)
    assert len(calls) == 1


def test_nothing_connects_until_asked() -> None:
    db = Database(_settings())  # the URL points at a closed port: constructing must not fail
    assert db.pool_stats() == {}
    db.close()
    with pytest.raises(RuntimeError, match="closed"):
        db.engine()
