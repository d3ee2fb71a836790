"""Restore a backup into a database: roles and grants, the data, the migrations, every
erasure recorded after the backup, a health check; on hold until the erasures are proven
re-applied."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.backup import Backup, BackupError, Target, Timings
from neonpro.domain.ports_backup import BackupSite
from neonpro.domain.vocabulary import AuditAction
from neonpro.services.backup.common import record_event, store_of
from neonpro.services.backup.erasures import (
    finish_command,
    later_ledgers,
    ledger_from,
    reapply_ledger,
    record_accepted_risk,
)
from neonpro.services.backup.verify import compare


class RestoreRefused(BackupError):
    """The target database is not empty and ``force`` was not given."""


@dataclass
class RestoreReport:
    backup_id: str
    target: str
    ok: bool
    seconds: dict[str, float]
    problems: list[str]
    reapplied_erasures: int
    health: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    erasures_proven: bool = True
    held: bool = False  # closed to the application role until ``finish`` is run
    finish: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "target": self.target, "ok": self.ok,
                "seconds": self.seconds, "problems": self.problems,
                "warnings": self.warnings, "reapplied_erasures": self.reapplied_erasures,
                "erasures_proven": self.erasures_proven, "held": self.held,
                "finish": self.finish, "health_ok": self.health.get("ok")}


@dataclass(frozen=True)
class _Erasures:
    """The erasures a restore must re-apply, whether they are proven complete, and why not."""

    ledger: list[dict[str, Any]]
    proven: bool
    warnings: list[str]


@dataclass(frozen=True)
class _Reopened:
    reapplied: int
    finish: str | None
    health: dict[str, Any]
    ok: bool


def restore_backup(site: BackupSite, backup: Backup, target_url: str, *,
                   force: bool = False, jobs: int = 2, accept_erasure_risk: bool = False,
                   actor: Actor = SystemActors.BACKUP) -> RestoreReport:
    """Restore ``backup`` into ``target_url``: roles and grants, then the data, then the
    migrations, then every erasure recorded after the backup, then a health check.

    The erasures re-applied are proven complete only when the live database's erasure
    ledger was read (or the target itself was the live database, and its ledger was read
    before it was replaced): erasures decided after the newest backup are recorded nowhere
    else. Otherwise the restored database is left on hold, closed to the application role
    (the restore hold), ``held`` is set and ``finish`` names the
    command that finishes the job; ``accept_erasure_risk`` opens it anyway, recorded in
    the audit trail. The target is created, and a replaced one dropped, only once the
    backup's files are checked and decrypted, and it is on hold from its creation on."""
    server = site.scratch_server
    target = server.target(target_url)
    timings = Timings()
    store_of(site, backup).check_files(backup)
    exists = server.exists(target)
    own = exists and not server.is_empty(target)
    if own and not force:
        raise RestoreRefused(f"database {target.describe()} is not empty: refusing to overwrite "
                             "it without --force")
    erasures = _erasures_to_keep(site, backup, target, own=own)
    _load(site, backup, target, jobs, timings, replace=exists)
    with timings.step("compare"):
        problems = compare(server, backup, target)
    with timings.step("migrate"):
        server.migrate(target)
    with site.restored(target) as restored:
        done = _reopen(restored, backup, target, erasures, problems, timings,
                       accept_erasure_risk=accept_erasure_risk, actor=actor)
    with suppress(Exception):
        record_event(site, AuditAction.RESTORE, backup.id, {
            "target": target.describe(), "ok": done.ok}, ok=done.ok, actor=actor)
    return RestoreReport(backup.id, target.describe(), done.ok, timings.steps, problems,
                         done.reapplied, done.health, erasures.warnings, erasures.proven,
                         done.finish is not None, done.finish)


def _load(site: BackupSite, backup: Backup, target: Target, jobs: int,
          timings: Timings, *, replace: bool) -> None:
    """Decrypt, create (or replace) the target on hold, pg_restore into it."""
    server = site.scratch_server
    reason = f"backup {backup.id} is being restored"
    with store_of(site, backup).plain_files(backup) as files:
        with timings.step("roles"):
            server.ensure_roles(target)
        with timings.step("pg_restore"):
            server.create(target, replace=replace)
            server.hold(target, reason)
            site.dump_tool.restore(target, files, jobs, backup.manifest)
            server.hold(target, reason)  # the dump's grants gave the usage back


def _reopen(restored: BackupSite, backup: Backup, target: Target, erasures: _Erasures,
            problems: list[str], timings: Timings, *, accept_erasure_risk: bool,
            actor: Actor) -> _Reopened:
    """Re-apply the erasures, then open the restored database or keep it on hold; check
    its health and record the restore in its own audit trail."""
    finish = None
    server = restored.scratch_server
    with timings.step("reapply_erasures"):
        reapplied = reapply_ledger(restored, erasures.ledger, actor)
    if erasures.proven or accept_erasure_risk:
        server.lift(target)
        if not erasures.proven:
            record_accepted_risk(restored, backup.id, erasures.warnings, actor)
    else:
        finish = finish_command(backup.id)
        server.hold(target, f"restore of backup {backup.id} could not prove that "
                            f"every erasure was re-applied: run {finish}")
        problems.append("erasures decided after the newest backup could not be proven "
                        "re-applied: the database is closed to the application role")
    with timings.step("health"):
        health = restored.health()
    ok = not problems and bool(health["ok"])
    record_event(restored, AuditAction.RESTORE, backup.id, {
        "reapplied_erasures": reapplied, "ok": ok, "erasures_proven": erasures.proven,
        "held": finish is not None, "snapshot_at": backup.manifest["snapshot_at"]},
        ok=ok, actor=actor)
    return _Reopened(reapplied, finish, health, ok)


def _erasures_to_keep(site: BackupSite, backup: Backup, target: Target, *,
                      own: bool) -> _Erasures:
    """The erasures a restore must re-apply: the target's own ledger (read before it is
    replaced: if that fails, stop here), the live database's, and those of every later
    backup; whether they are proven complete; and why not."""
    server = site.scratch_server
    ledger = (ledger_from(server, target) or []) if own else []
    warnings: list[str] = []
    source = server.source
    proven = own and source == target
    if source != target:
        live = ledger_from(server, source, warnings)
        proven = live is not None
        ledger += live or []
    elif not own:
        warnings.append(f"the live database {target.describe()} is gone or empty: erasures "
                        "decided after the newest backup are recorded nowhere")
    return _Erasures(ledger + later_ledgers(store_of(site, backup), backup), proven, warnings)
