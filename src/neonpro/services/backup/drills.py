"""The restore drill: back up, restore into a scratch database, verify it, and measure
the recovery time (RTO) and the recovery point (RPO) against their targets."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.ports_backup import BackupSite
from neonpro.services.backup.common import store_of
from neonpro.services.backup.create import create_backup
from neonpro.services.backup.restore import restore_backup
from neonpro.services.backup.verify import VerifyReport, verify_audit

log = structlog.get_logger(__name__)

RTO_TARGET_S = 15 * 60
RPO_TARGET_S = 5 * 60


@dataclass
class DrillReport:
    backup_id: str
    ok: bool
    rto_seconds: float
    rpo_seconds: float | None
    rpo_basis: str
    steps: dict[str, float]
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "ok": self.ok, "rto_seconds": self.rto_seconds,
                "rpo_seconds": self.rpo_seconds, "rpo_basis": self.rpo_basis,
                "steps": self.steps, "problems": self.problems}


def drill(site: BackupSite, *, directory: Path | None = None, jobs: int = 2,
          wal_wait_s: float = 420.0, actor: Actor = SystemActors.BACKUP) -> DrillReport:
    """Backup, restore into a scratch database, verify it, and measure RTO and RPO.

    RTO: from the start of the restore to a healthy, migrated database. RPO: with WAL
    archiving on, the seconds from a committed write to its WAL segment being archived
    (what a crash just before the archive would lose); without it, the data written since
    the last logical backup is at risk, so the RPO is the backup interval (not measured).
    """
    steps: dict[str, float] = {}
    start = time.perf_counter()
    backup = create_backup(site, directory=directory, actor=actor)
    steps["backup"] = round(time.perf_counter() - start, 3)
    server = site.scratch_server
    target = server.source.scratch("drill")
    problems: list[str] = []
    try:
        t0 = time.perf_counter()
        report = restore_backup(site, backup, target.url(), jobs=jobs, actor=actor)
        rto = round(time.perf_counter() - t0, 3)
        steps.update({f"restore.{k}": v for k, v in report.seconds.items()})
        problems += report.problems
        if not report.health.get("ok"):
            problems.append("restored database is not healthy")
        t1 = time.perf_counter()
        events, chain_problems = verify_audit(server, target)
        steps["audit_verify"] = round(time.perf_counter() - t1, 3)
        problems += chain_problems
        log.info("drill_audit_verified", events=events)
    finally:
        server.drop(target)
    # the drill restored and checked this backup as verify does: record it as verified
    store_of(site, backup).record_verification(backup, VerifyReport(
        backup.id, not problems, list(problems), steps).as_dict() | {"by": "drill"})
    rpo, basis = server.measure_wal_rpo(wait_s=wal_wait_s)
    if rto > RTO_TARGET_S:
        problems.append(f"RTO {rto:.0f} s is over the {RTO_TARGET_S} s target")
    if rpo is not None and rpo > RPO_TARGET_S:
        problems.append(f"RPO {rpo:.0f} s is over the {RPO_TARGET_S} s target")
    return DrillReport(backup.id, not problems, rto, rpo, basis, steps, problems)
