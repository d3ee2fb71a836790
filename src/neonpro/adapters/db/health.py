"""Database health: connectivity, latency, migrations, RLS, the tenant role's powers and,
on request, drift of the live schema from the migrations."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from neonpro.adapters.db import citus_health, citus_nodes, migrate, schema_check
from neonpro.adapters.db.database import DURABLE_COMMIT
from neonpro.adapters.db.models import SYSTEM_CLINIC_ID, Base
from neonpro.adapters.db.restore_hold import READ as HOLD_READ
from neonpro.adapters.db.security import rls_tables
from neonpro.adapters.db.watchdog import CommitWatchdog
from neonpro.domain.actors import SystemActors

if TYPE_CHECKING:
    from neonpro.adapters.db.database import Database

_PROBE_CLINIC = uuid.UUID(int=0)  # no clinic has this id: the probe sees no rows

_PROBE_CONTEXT = text("SELECT set_config('role', :role, true), "
                      "set_config('statement_timeout', :ms, true), " + DURABLE_COMMIT)
_PROBE_WRITE = text("INSERT INTO commit_tokens (clinic_id, token) VALUES (:clinic, :token)")
_APP_CAN_USE = text("SELECT has_schema_privilege(:role, 'public', 'USAGE')")
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


def _commits(db: Database) -> dict[str, Any]:
    """A bounded write: one commit token, committed within the readiness bound. A
    COMMIT still waiting at the bound (a synchronous standby that does not answer, a
    stalled disk) is cut there (see ``CommitWatchdog``) and the check fails."""
    bound_ms = db.settings.readiness_commit_timeout_ms
    start = time.perf_counter()
    with db.engine("service").connect() as conn:
        transaction = conn.begin()
        conn.execute(_PROBE_CONTEXT, {"role": db.roles.service, "ms": str(bound_ms)})
        conn.execute(_PROBE_WRITE, {"clinic": SYSTEM_CLINIC_ID, "token": uuid.uuid4()})
        watchdog = CommitWatchdog(conn.connection.dbapi_connection,
                                  bound_ms / 1000 - (time.perf_counter() - start))
        try:
            transaction.commit()
        finally:
            cut = watchdog.stop()
            if cut:
                conn.invalidate()
    took = (time.perf_counter() - start) * 1000
    return {"ok": not cut and took < bound_ms, "commit_ms": round(took, 1),
            "bound_ms": bound_ms}


def _restore_hold(db: Database) -> dict[str, Any]:
    """A restore that could not prove its erasures re-applied leaves the database closed
    to the application role (adapters/db/restore_hold.py) until that is finished."""
    with db.engine().connect() as conn:
        reason = conn.execute(text(HOLD_READ)).scalar()
        usable = conn.execute(_APP_CAN_USE, {"role": db.roles.app}).scalar()
    report: dict[str, Any] = {"ok": reason is None and bool(usable),
                              "application_role_can_use_schema": bool(usable)}
    if reason is not None:
        report["reason"] = reason
    return report


def _drift(db: Database) -> dict[str, Any]:
    """The live schema against what its revision of the migrations builds (a scratch
    database on the same server: needs CREATEDB). A login without it cannot tell: the
    check says so (``checked`` false) without failing."""
    if citus_nodes.nodes_of(db.owner_url) and not citus_nodes.is_superuser(db.owner_url):
        return {"ok": True, "checked": False,
                "reason": "a distributed database is compared with a scratch Citus database, "
                          "which only a superuser's URL can make"}
    try:
        report = schema_check.check_live(db.owner_url, db.owner_url, db.roles)
    except SQLAlchemyError as exc:
        if _sqlstate(exc) != "42501":  # insufficient_privilege
            raise
        return {"ok": True, "checked": False,
                "reason": "no permission to create a scratch database (CREATEDB)"}
    if not report.migrated:
        return {"ok": True, "checked": False, "reason": "not migrated"}
    return {"ok": report.clean, "checked": True, "differences": report.differences}


def _sqlstate(exc: SQLAlchemyError) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def check_health(db: Database, *, drift: bool = False) -> dict[str, Any]:
    """A JSON-ready report; ``report["ok"]`` is False when any check fails.

    ``drift``: also compare the live schema with the migrations and, on Citus, ask every
    node (``neonpro db health`` does; readiness does not: a scratch migration of a few
    seconds, and a query per shard)."""
    names = rls_tables(Base.metadata)
    if db.embedded is not None:
        # the embedded server stopped under this process (by hand): bring it back
        db.embedded.revive()
    checks = {"connectivity": _check(lambda: _connectivity(db))}
    if checks["connectivity"]["ok"]:
        checks["migrations"] = _check(lambda: _migrations(db))
        checks["rls"] = _check(lambda: _rls(db, names))
        checks["restore_hold"] = _check(lambda: _restore_hold(db))
        checks["tenant_role"] = _check(lambda: _tenant_role(db, names))
        checks["commits"] = _check(lambda: _commits(db))
        if drift:
            checks["drift"] = _check(lambda: _drift(db))
            # every node and shard of a Citus cluster: thousands of remote queries, for the
            # operator's `db health`, never the readiness probe (one flaky worker link
            # would take every API instance out of the load balancer at once)
            if citus_health.is_distributed(db):
                checks["citus"] = _check(lambda: citus_health.check(db))
        checks["pool"] = {
            "ok": True,
            "engines": {k: vars(v) for k, v in db.pool_stats().items()},
        }
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}


def _connectivity(db: Database) -> dict[str, Any]:
    """The server answers; its latency and version."""
    start = time.perf_counter()
    with db.engine().connect() as conn:
        conn.execute(text("SELECT 1"))
        version: str = conn.execute(text("SHOW server_version")).scalar_one()
    return {
        "ok": True,
        "latency_ms": round((time.perf_counter() - start) * 1000, 2),
        "server_version": version,
    }


def _migrations(db: Database) -> dict[str, Any]:
    """The schema is at the migrations' head."""
    revs = migrate.revisions(db.owner_url)
    return {"ok": revs.at_head, "current": list(revs.current), "head": revs.head}


def _rls(db: Database, names: list[str]) -> dict[str, Any]:
    """Row-level security is enabled and forced on every table."""
    with db.engine().connect() as conn:
        rows = conn.execute(_RLS_SQL, {"names": names}).all()
    found = {r[0]: (r[1], r[2]) for r in rows}
    missing = sorted(set(names) - set(found))
    not_enabled = sorted(n for n, (on, _f) in found.items() if not on)
    not_forced = sorted(n for n, (_on, forced) in found.items() if not forced)
    ok = not (missing or not_enabled or not_forced)
    return {"ok": ok, "tables": len(found), "missing": missing,
            "not_enabled": not_enabled, "not_forced": not_forced}


def _tenant_role(db: Database, names: list[str]) -> dict[str, Any]:
    """The tenant role is no superuser, bypasses no RLS, owns no table, has no member roles."""
    health = SystemActors.HEALTH
    with db.transaction("app", _PROBE_CLINIC, health.id, health.role) as session:  # reads
        row = session.execute(_ROLE_SQL, {"names": names}).one()
    role, superuser, bypass, owns, member_of = row
    ok = not (superuser or bypass or owns or member_of)
    return {"ok": ok, "role": role, "superuser": superuser, "bypassrls": bypass,
            "owns_tables": owns, "member_of": list(member_of)}
