"""Prune backups: grandfather-father-son retention, never the newest verified one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.backup import Backup
from neonpro.domain.ports_backup import BackupSite
from neonpro.domain.vocabulary import AuditAction
from neonpro.services.backup.common import record_event

STALE_PARTIAL = timedelta(hours=6)  # an interrupted backup older than this is removed


@dataclass(frozen=True)
class PrunePlan:
    keep: list[Backup]
    delete: list[Backup]
    reasons: dict[str, list[str]]


def plan_prune(backups: list[Backup], daily: int, weekly: int, monthly: int) -> PrunePlan:
    """Grandfather-father-son: the newest backup of each of the last ``daily`` days,
    ``weekly`` ISO weeks and ``monthly`` months; always the newest verified backup (so
    the only verified one is never deleted) and the newest one."""
    newest_first = sorted(backups, key=lambda b: b.finished_at, reverse=True)
    reasons: dict[str, list[str]] = {}

    def keep_buckets(label: str, count: int, bucket: Callable[[datetime], object]) -> None:
        seen: list[object] = []
        for b in newest_first:
            key = bucket(b.finished_at)
            if key in seen:
                continue
            if len(seen) == count:
                break
            seen.append(key)
            reasons.setdefault(b.id, []).append(label)

    keep_buckets("daily", daily, lambda t: t.date())
    keep_buckets("weekly", weekly, lambda t: t.isocalendar()[:2])
    keep_buckets("monthly", monthly, lambda t: (t.year, t.month))
    if newest_first:
        reasons.setdefault(newest_first[0].id, []).append("newest")
    verified = [b for b in newest_first if b.verified]
    if verified:
        reasons.setdefault(verified[0].id, []).append("newest verified")
    keep = [b for b in newest_first if b.id in reasons]
    delete = [b for b in newest_first if b.id not in reasons]
    return PrunePlan(keep, delete, reasons)


def prune(site: BackupSite, *, directory: Path | None = None, dry_run: bool = False,
          actor: Actor = SystemActors.BACKUP) -> PrunePlan:
    """Delete the backups :func:`plan_prune` does not keep, and interrupted ones older
    than six hours (unless ``dry_run``)."""
    store, policy = site.backup_store(directory), site.backup_policy
    plan = plan_prune(store.catalog(), policy.keep_daily, policy.keep_weekly,
                      policy.keep_monthly)
    if not dry_run:
        for b in plan.delete:
            store.delete(b)
        store.drop_partials(older_than=datetime.now(UTC) - STALE_PARTIAL)
        if plan.delete:
            record_event(site, AuditAction.DELETE, "prune", {
                "phase": "prune", "deleted": [b.id for b in plan.delete]}, actor=actor)
    return plan
