"""Schema management: Alembic driven from Python, with the roles from settings."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from neonpro.adapters.db.security import Roles
from neonpro.domain.operations import Revisions

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str, roles: Roles, *, stdout: io.StringIO | None = None,
                   audit_key: tuple[str, bytes] | None = None) -> Config:
    """An Alembic config for ``url``; revision files get a UTC timestamp prefix.

    ``audit_key`` (id, key): revision 0011 signs the chains sealed before audit keys with
    it; without it, that revision refuses a database that has sealed events.
    """
    cfg = Config(stdout=stdout) if stdout is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option(
        "file_template",
        "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d%%(second).2d_%%(rev)s_%%(slug)s",
    )
    cfg.set_main_option("timezone", "UTC")
    cfg.set_main_option("truncate_slug_length", "40")
    cfg.attributes["url"] = url
    cfg.attributes["roles"] = roles
    if audit_key is not None:
        cfg.attributes["audit_key"] = audit_key
    return cfg


def head_revision() -> str | None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head()


def current_revisions(url: str) -> tuple[str, ...]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            try:
                return tuple(MigrationContext.configure(conn).get_current_heads())
            except ProgrammingError:
                return ()
    finally:
        engine.dispose()


def revisions(url: str) -> Revisions:
    return Revisions(current_revisions(url), head_revision())


def upgrade(url: str, roles: Roles, revision: str = "head", *,
            audit_key: tuple[str, bytes] | None = None) -> None:
    command.upgrade(alembic_config(url, roles, audit_key=audit_key), revision)


def downgrade(url: str, roles: Roles, revision: str) -> None:
    command.downgrade(alembic_config(url, roles), revision)


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down revision, message) from base to head."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    out = []
    for rev in script.walk_revisions():
        down = rev.down_revision if isinstance(rev.down_revision, str) else None
        out.append((rev.revision, down, rev.doc or ""))
    return list(reversed(out))


def database_exists(admin_url: str, name: str) -> bool:
    engine = create_engine(admin_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            return row is not None
    finally:
        engine.dispose()
