"""Alembic environment: bootstrap the logins with the given URL, then migrate as the owner.

The URL is the owner's login (production), or a superuser's (development, tests, the
embedded default) from which the logins are created and the owner's URL derived
(``logins.py``). Either way the migrations run on a connection of the owner login itself:
no SET ROLE, so a Citus coordinator reaches its workers as the owner too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db.logins import ensure_logins, login_url, url_password
from neonpro.adapters.db.migrations import migration_roles
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.restore_hold import READ as HELD
from neonpro.adapters.db.security import schema_privileges_sql

LOCK = text("SELECT pg_advisory_lock(hashtext('neonpro.migrations'))")


def run_migrations_online() -> None:
    url = context.config.attributes["url"]
    roles = migration_roles()
    owner_url = login_url(url, roles.owner)
    # NullPool: these connections are never reused
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(LOCK)
        if owner_url != url:  # a superuser's (or DBA's) URL: create or repair the logins
            ensure_logins(connection, roles, url_password(url))
        held = connection.execute(text(HELD)).scalar() is not None  # a restore on hold
        for statement in schema_privileges_sql(roles, held=held):
            connection.execute(text(statement))
        connection.commit()
    engine.dispose()
    engine = create_engine(owner_url, poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(LOCK)
        connection.execute(text("SET TimeZone = 'UTC'"))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            compare_type=True,
            compare_server_default=True,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported: run against a database")
run_migrations_online()
