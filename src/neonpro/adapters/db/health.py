"""Database health: connectivity, latency, migrations, RLS, and the tenant role's powers."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from neonpro.adapters.db import migrate
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import rls_tables
from neonpro.domain.actors import SystemActors

if TYPE_CHECKING:
    from neonpro.adapters.db.database import Database

_PROBE_CLINIC = uuid.UUID(int=0)  # no clinic has this id: the probe sees no rows

_RLS_SQL = text(
    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
    "WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(:names)"
)
_ROLE_SQL = text(
    "SELECT current_user, r.rolsuper, r.rolbypassrls, "
    "  EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
    "          AND c.relname = ANY(:names) AND pg_has_role(current_user, c.relowner, 'USAGE')),"
    # the application's login is member of no role: no SET ROLE back to more powers
    "  ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
    "        WHERE m.member = r.oid ORDER BY 1)"
    " FROM pg_roles r WHERE r.rolname = current_user"
)


def _check(fn: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn()
    except (SQLAlchemyError, OSError, RuntimeError) as exc:
        return {"ok": False, "error": type(exc).__name__, "detail": _safe(exc)}
    return result


def _safe(exc: BaseException) -> str:
    # driver messages about connectivity carry host/port, never personal data
    first = str(getattr(exc, "orig", exc) or exc).splitlines()
    return first[0][:200] if first else type(exc).__name__


def check_health(db: Database) -> dict[str, Any]:
    """A JSON-ready report; ``report["ok"]`` is False when any check fails."""
    names = rls_tables(Base.metadata)

    def connectivity() -> dict[str, Any]:
        start = time.perf_counter()
        with db.engine().connect() as conn:
            conn.execute(text("SELECT 1"))
            version: str = conn.execute(text("SHOW server_version")).scalar_one()
        return {
            "ok": True,
            "latency_ms": round((time.perf_counter() - start) * 1000, 2),
            "server_version": version,
        }

    def migrations() -> dict[str, Any]:
        revs = migrate.revisions(db.owner_url)
        return {"ok": revs.at_head, "current": list(revs.current), "head": revs.head}

    def rls() -> dict[str, Any]:
        with db.engine().connect() as conn:
            rows = conn.execute(_RLS_SQL, {"names": names}).all()
        found = {r[0]: (r[1], r[2]) for r in rows}
        missing = sorted(set(names) - set(found))
        not_enabled = sorted(n for n, (on, _f) in found.items() if not on)
        not_forced = sorted(n for n, (_on, forced) in found.items() if not forced)
        ok = not (missing or not_enabled or not_forced)
        return {"ok": ok, "tables": len(found), "missing": missing,
                "not_enabled": not_enabled, "not_forced": not_forced}

    def tenant_role() -> dict[str, Any]:
        health = SystemActors.HEALTH
        with db.tenant_session(_PROBE_CLINIC, health.id, health.role) as session:
            row = session.execute(_ROLE_SQL, {"names": names}).one()
        role, superuser, bypass, owns, member_of = row
        ok = not (superuser or bypass or owns or member_of)
        return {"ok": ok, "role": role, "superuser": superuser, "bypassrls": bypass,
                "owns_tables": owns, "member_of": list(member_of)}

    checks = {"connectivity": _check(connectivity)}
    if checks["connectivity"]["ok"]:
        checks["migrations"] = _check(migrations)
        checks["rls"] = _check(rls)
        checks["tenant_role"] = _check(tenant_role)
        checks["pool"] = {
            "ok": True,
            "engines": {k: vars(v) for k, v in db.pool_stats().items()},
        }
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
