from __future__ import annotations

import pytest
from pydantic import ValidationError

from neonpro.config import Environment, Settings


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg,arg-type]


def test_production_refuses_the_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEONPRO_DATABASE_URL", raising=False)
    with pytest.raises(ValidationError, match="production needs NEONPRO_DATABASE_URL"):
        settings(environment=Environment.PRODUCTION)


def test_production_takes_one_url_per_role() -> None:
    """A login per role: production never derives the application or service login from
    the owner's URL, so a missing one is a configuration error at start, not at first use."""
    with pytest.raises(ValidationError, match="NEONPRO_APP_DATABASE_URL"):
        settings(environment=Environment.PRODUCTION, database_url="postgresql://o@h/db",
                 service_database_url="postgresql://s@h/db")
    with pytest.raises(ValidationError, match="NEONPRO_SERVICE_DATABASE_URL"):
        settings(environment=Environment.PRODUCTION, database_url="postgresql://o@h/db",
                 app_database_url="postgresql://a@h/db")


def test_roles_must_differ() -> None:
    with pytest.raises(ValidationError, match="different roles"):
        settings(app_role="neonpro_service")


def test_role_names_are_identifiers() -> None:
    with pytest.raises(ValidationError):
        settings(app_role='x"; drop table patients; --')


def test_pool_defaults_follow_environment() -> None:
    prod = settings(environment=Environment.PRODUCTION, database_url="postgresql://h/db",
                    app_database_url="postgresql://app@h/db",
                    service_database_url="postgresql://service@h/db")
    dev = settings(environment=Environment.DEVELOPMENT)
    assert prod.pool_setting("pool_size") > dev.pool_setting("pool_size")
    assert prod.pool_setting("statement_timeout_ms") == 15_000
    assert settings(pool_size=7).pool_setting("pool_size") == 7


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEONPRO_POOL_SIZE", "9")
    assert settings().pool_setting("pool_size") == 9
