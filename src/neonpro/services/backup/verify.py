"""Verify a backup: restore it into a scratch database, compare that with the manifest
(row counts, checksums, audit chain heads) and verify its audit chains."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from neonpro.adapters.backup import pgdump, server
from neonpro.adapters.backup.pgtools import BackupError, Target, ToolError
from neonpro.adapters.backup.store import (
    VERIFIED,
    Backup,
    check_files,
    now,
    plain_files,
    write_json,
)
from neonpro.adapters.backup.stream import CorruptBackup
from neonpro.adapters.db.audit import verify_chains
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.vocabulary import AuditAction
from neonpro.services.backup.common import Timings, key_of, record_event, roles_of, scratch


@dataclass
class VerifyReport:
    backup_id: str
    ok: bool
    problems: list[str]
    seconds: dict[str, float]
    audit_events_verified: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "ok": self.ok, "problems": self.problems,
                "seconds": self.seconds, "audit_events_verified": self.audit_events_verified,
                "verified_at": now().isoformat()}


def restore_files(target: Target, files: dict[str, Path], jobs: int,
                  manifest: dict[str, Any]) -> None:
    """pg_restore the backup's files into ``target``, a server at least as new as the
    backup's."""
    pgdump.restore(target, files, jobs, manifest, server.server_major(target))


def compare(backup: Backup, target: Target, roles: Roles) -> list[str]:
    """What differs between the manifest and ``target`` (row counts, checksums, heads)."""
    problems = []
    expected = backup.manifest["tables"]
    tables, heads = server.read_stats(target, roles, {t: v.get("method", "md5")
                                                       for t, v in expected.items()})
    # PostgreSQL's hash functions are only promised within one major version
    hashes_comparable = server.server_major(target) == backup.manifest["server_major"]
    for name in sorted(set(expected) | set(tables)):
        want, got = expected.get(name), tables.get(name)
        if want is None or got is None:
            problems.append(f"table {name}: {'missing' if got is None else 'unexpected'}")
        elif want["rows"] != got["rows"]:
            problems.append(f"table {name}: {got['rows']} rows, manifest says {want['rows']}")
        elif want["checksum"] != got["checksum"] and (
                hashes_comparable or got["method"] != "hash64"):
            problems.append(f"table {name}: checksum differs from the manifest")
    if heads["chains"] != backup.manifest["audit"]["chains"]:
        problems.append("audit chain heads differ from the manifest")
    return problems


def verify_backup(container: Container, backup: Backup, *, jobs: int = 2,
                  actor: Actor = SystemActors.BACKUP) -> VerifyReport:
    """Restore into a scratch database, compare with the manifest, verify the audit chains."""
    timings = Timings()
    problems: list[str] = []
    events = 0
    target = scratch(container, "verify")
    try:
        events = _restore_and_check(container, backup, target, jobs, timings, problems)
    except (CorruptBackup, BackupError, ToolError) as exc:
        problems.append(str(exc))
    finally:
        with suppress(psycopg.Error):
            server.drop_database(target)
    report = VerifyReport(backup.id, not problems, problems, timings.steps, events)
    write_json(backup.path / VERIFIED, report.as_dict())
    with suppress(Exception):
        record_event(container, AuditAction.VERIFY, backup.id, {
            "ok": report.ok, "problems": len(problems)}, ok=report.ok, actor=actor)
    return report


def _restore_and_check(container: Container, backup: Backup, target: Target, jobs: int,
                       timings: Timings, problems: list[str]) -> int:
    """Check, restore, compare and verify into ``problems``; returns the events verified."""
    with timings.step("checksums"):
        check_files(backup)
    server.ensure_roles(target, roles_of(container))
    server.create_database(target, replace=False)
    with timings.step("pg_restore"), plain_files(backup, key_of(container)) as files:
        restore_files(target, files, jobs, backup.manifest)
    # two independent reads of the restored data, side by side
    with ThreadPoolExecutor(max_workers=2) as pool:
        compared = pool.submit(timings.timed, "compare", compare, backup, target,
                               roles_of(container))
        audited = pool.submit(timings.timed, "audit_verify", verify_audit, container, target)
        problems += compared.result()
        events, chain_problems = audited.result()
        problems += chain_problems
    return events


def verify_audit(container: Container, target: Target) -> tuple[int, list[str]]:
    """Verify every audit chain of ``target`` with ``container``'s keys."""
    db = Database(container.settings, url=target.url())
    try:
        reports = verify_chains(db, SystemActors.BACKUP, container.keyring)
    finally:
        db.close()
    problems = [f"audit chain of clinic {r.clinic_id} broken at {r.broken_at}: {r.reason}"
                for r in reports if r.broken_at is not None]
    return sum(r.sealed for r in reports), problems
