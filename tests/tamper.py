"""The database owner as a tamperer: its own login, every guard trigger switched off.

The owner can always disable the triggers of the tables it owns; what it cannot do without
the audit key is produce hashes that verify. Tests run the owner's statements through
here, then check that ``verify`` (or the database) catches them.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db.logins import login_url
from neonpro.adapters.db.security import GUARDED_TABLES
from neonpro.bootstrap import Container


def owner_url(box: Container) -> str:
    """The owner's own login (the test servers' URL is a superuser's)."""
    return login_url(box.database.owner_url, box.database.roles.owner)


def as_owner(box: Container, *statements: str, guards_off: bool = True) -> None:
    """Run ``statements`` in one transaction as the owner, guards disabled (and restored
    as they were: the guards fire ALWAYS)."""
    engine = create_engine(owner_url(box), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if guards_off:
                for table in GUARDED_TABLES:
                    conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            for statement in statements:
                conn.execute(text(statement))
            if guards_off:
                for table in GUARDED_TABLES:
                    conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
                    for trigger in (f"{table}_guard", f"{table}_no_truncate"):
                        conn.execute(text(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}"))
    finally:
        engine.dispose()
