"""Alembic migrations. Revision files are named with a UTC timestamp so they sort by time."""

from __future__ import annotations

from alembic import context

from neonpro.adapters.db.security import Roles


def migration_roles() -> Roles:
    """The role names this migration run uses (from settings, passed in by ``migrate.py``)."""
    roles = context.config.attributes.get("roles")
    return roles if isinstance(roles, Roles) else Roles()
