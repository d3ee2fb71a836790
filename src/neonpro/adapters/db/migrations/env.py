"""Alembic environment: bootstrap roles as the migrator, then migrate as the owner role."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db.migrations import migration_roles
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.restore_hold import READ as HELD
from neonpro.adapters.db.security import bootstrap_roles_sql, schema_privileges_sql


def run_migrations_online() -> None:
    url = context.config.attributes["url"]
    roles = migration_roles()
    # NullPool: this connection is never reused, so its session-level SET ROLE dies with it
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(hashtext('neonpro.migrations'))"))
        connection.execute(text(bootstrap_roles_sql(roles)))
        held = connection.execute(text(HELD)).scalar() is not None  # a restore on hold
        for statement in schema_privileges_sql(roles, held=held):
            connection.execute(text(statement))
        connection.commit()
        connection.execute(text(f'SET ROLE "{roles.owner}"'))
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
