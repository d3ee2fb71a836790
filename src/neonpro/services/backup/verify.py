"""Verify a backup: restore it into a scratch database, compare that with the manifest
(row counts, checksums, audit chain heads) and verify its audit chains."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.backup import Backup, BackupError, CorruptBackup, Target, Timings, ToolError
from neonpro.domain.ports_backup import BackupSite, ScratchServer
from neonpro.domain.vocabulary import AuditAction
from neonpro.services.backup.common import record_event, store_of


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
                "verified_at": datetime.now(UTC).isoformat()}


def compare(server: ScratchServer, backup: Backup, target: Target) -> list[str]:
    """What differs between the manifest and ``target`` (row counts, checksums, heads)."""
    problems = []
    expected = backup.manifest["tables"]
    tables, heads = server.read_stats(target, {t: v.get("method", "md5")
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


def verify_backup(site: BackupSite, backup: Backup, *, jobs: int = 2,
                  actor: Actor = SystemActors.BACKUP) -> VerifyReport:
    """Restore into a scratch database, compare with the manifest, verify the audit chains."""
    timings = Timings()
    problems: list[str] = []
    events = 0
    server = site.scratch_server
    target = server.source.scratch("verify")
    try:
        events = _restore_and_check(site, backup, target, jobs, timings, problems)
    except (CorruptBackup, BackupError, ToolError) as exc:
        problems.append(str(exc))
    finally:
        server.drop(target)
    report = VerifyReport(backup.id, not problems, problems, timings.steps, events)
    store_of(site, backup).record_verification(backup, report.as_dict())
    with suppress(Exception):
        record_event(site, AuditAction.VERIFY, backup.id, {
            "ok": report.ok, "problems": len(problems)}, ok=report.ok, actor=actor)
    return report


def _restore_and_check(site: BackupSite, backup: Backup, target: Target, jobs: int,
                       timings: Timings, problems: list[str]) -> int:
    """Check, restore, compare and verify into ``problems``; returns the events verified."""
    server, store = site.scratch_server, store_of(site, backup)
    with timings.step("checksums"):
        store.check_files(backup)
    server.ensure_roles(target)
    server.create(target, replace=False)
    with timings.step("pg_restore"), store.plain_files(backup) as files:
        site.dump_tool.restore(target, files, jobs, backup.manifest)
    # two independent reads of the restored data, side by side
    with ThreadPoolExecutor(max_workers=2) as pool:
        compared = pool.submit(timings.timed, "compare", compare, server, backup, target)
        audited = pool.submit(timings.timed, "audit_verify", verify_audit, server, target)
        problems += compared.result()
        events, chain_problems = audited.result()
        problems += chain_problems
    return events


def verify_audit(server: ScratchServer, target: Target) -> tuple[int, list[str]]:
    """Verify every audit chain of ``target`` with the live database's keys."""
    checks = server.verify_audit(target)
    problems = [f"audit chain of clinic {c.clinic_id} broken at {c.broken_at}: {c.reason}"
                for c in checks if c.broken_at is not None]
    return sum(c.sealed for c in checks), problems
