"""The backup use cases' rules over in-memory ports (``tests/unit/fakes_backup.py``):
retention, what a backup's manifest says, the restore's overwrite guard and its hold
until every erasure is proven re-applied, what verify compares, and the drill's targets.
The round trips on PostgreSQL are in ``tests/integration/test_backup.py``."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from neonpro.domain import ports_backup
from neonpro.domain.backup import Backup, BackupError, ChainCheck, CorruptBackup
from neonpro.domain.vocabulary import AuditAction, AuditStatus, RiskLevel
from neonpro.services import backup as svc
from tests.unit.fakes_backup import (
    LIVE,
    FakeDumpTool,
    FakeServer,
    FakeSite,
    FakeStore,
    entry,
    manifest,
)

T0 = datetime(2031, 3, 1, 3, tzinfo=UTC)
LIVE_CLINIC = uuid.UUID("00000000-0000-0000-0000-0000000000c1")


def _backup(at: datetime, name: str | None = None, *, verified: bool = False,
            **extra: object) -> Backup:
    name = name or at.strftime("%Y%m%dT%H%M%SZ")
    return Backup(name, Path("/backups") / name, manifest(at, **extra),
                  {"ok": True} if verified else None)


# ----------------------------------------------------------------------------- pruning
def test_prune_keeps_days_weeks_months_and_the_only_verified() -> None:
    backups = [_backup(T0 + timedelta(days=day, hours=h), f"b{day:03d}{h}",
                       verified=(day, h) == (0, 0))
               for day in range(120) for h in (0, 12)]
    oldest = backups[0]
    plan = svc.plan_prune(backups, daily=7, weekly=4, monthly=3)
    kept = {b.id for b in plan.keep}
    assert "newest verified" in plan.reasons[oldest.id]
    newest = max(backups, key=lambda b: b.finished_at)
    assert "newest" in plan.reasons[newest.id]
    days = {b.finished_at.date() for b in plan.keep}
    assert len([d for d in days if d > newest.finished_at.date() - timedelta(days=7)]) == 7
    assert len(plan.keep) <= 7 + 4 + 3 + 1
    assert len(plan.keep) + len(plan.delete) == len(backups)
    assert oldest.id in kept
    # a later verified backup frees the old one
    later = [*backups[:-1], _backup(newest.finished_at, newest.id, verified=True)]
    assert oldest.id not in {b.id for b in svc.plan_prune(later, 7, 4, 3).keep}


def test_prune_deletes_what_the_plan_drops_and_says_so() -> None:
    site = FakeSite()
    for day in range(30):
        site.store.add(_backup(T0 + timedelta(days=day)))
    dry = svc.prune(site, dry_run=True)
    assert dry.delete
    assert site.store.deleted == []
    assert site.events() == []
    assert site.store.partials_before == []

    plan = svc.prune(site)
    assert sorted(site.store.deleted) == sorted(b.id for b in plan.delete)
    assert {b.id for b in site.store.catalog()} == {b.id for b in plan.keep}
    (event,) = site.events()
    assert event["action"] == AuditAction.DELETE
    assert event["details"] == {"phase": "prune", "deleted": [b.id for b in plan.delete]}
    (cutoff,) = site.store.partials_before  # interrupted backups older than six hours
    assert timedelta(hours=5.9) < datetime.now(UTC) - cutoff < timedelta(hours=6.1)


# ----------------------------------------------------------------------------- create
def test_a_backup_manifest_records_the_snapshot_and_the_ledger() -> None:
    site = FakeSite(dumps=FakeDumpTool(key=b"k" * 32, ledger=[entry(T0), entry(T0)]))
    backup = svc.create_backup(site)
    m = backup.manifest
    assert m["format"] == svc.FORMAT
    assert m["source"] == LIVE.describe()  # host, port and name: never the password
    assert m["snapshot_at"] == "2031-01-01T00:00:00+00:00"
    assert m["encrypted"] is True
    assert set(m["files"]) == {"data", "ledger"}
    assert m["erasure_ledger_entries"] == 2
    assert m["tools"]["pg_dump_major"] == 18
    assert "neonpro" in m["tools"]
    assert "manifest_stats" in m["timings"]
    assert site.store.ledger(backup)
    assert site.store.find(backup.id) == backup
    (event,) = site.events()
    assert (event["action"], event["status"], event["risk"]) == (
        AuditAction.BACKUP, AuditStatus.SUCCESS, RiskLevel.HIGH)
    assert event["details"]["encrypted"] is True
    assert site.sealed == 1


def test_a_failed_dump_leaves_no_backup_and_records_the_failure() -> None:
    site = FakeSite(dumps=FakeDumpTool(fail=OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space"):
        svc.create_backup(site)
    assert site.store.catalog() == []
    assert [w.name for w in site.store.discarded] == ["b-0.partial"]
    (event,) = site.events()
    assert (event["action"], event["status"]) == (AuditAction.BACKUP, AuditStatus.FAILURE)


# ----------------------------------------------------------------------------- restore
def _site_with_backup(**server: object) -> tuple[FakeSite, Backup]:
    site = FakeSite(server=FakeServer(**server))  # type: ignore[arg-type]
    backup = site.store.add(_backup(T0), [entry(T0 - timedelta(days=1))])
    return site, backup


def test_a_non_empty_target_is_not_overwritten_without_force() -> None:
    site, backup = _site_with_backup(databases={"neonpro": False, "other": False})
    with pytest.raises(svc.RestoreRefused, match="not empty"):
        svc.restore_backup(site, backup, "postgresql://h/other")
    assert site.server.calls == []  # nothing created, dropped or restored
    assert isinstance(svc.RestoreRefused("x"), BackupError)


def test_a_restore_reapplies_the_live_and_later_ledgers() -> None:
    live_only = entry(T0 + timedelta(days=2))
    site, backup = _site_with_backup(ledgers={"neonpro": [live_only]})
    later = entry(T0 + timedelta(days=1))
    site.store.add(_backup(T0 + timedelta(days=1)), [later, live_only])
    report = svc.restore_backup(site, backup, "postgresql://h/fresh")
    assert report.ok
    assert report.erasures_proven
    assert not report.held
    restored = site.server.ledgers["fresh"]
    assert [e["id"] for e in restored] == [later["id"], live_only["id"]]  # once, in order
    assert "fresh" not in site.server.held  # open to the application again
    assert ("migrate", "fresh") in site.server.calls
    (opened,) = site.opened
    assert [e["action"] for e in opened.events()] == [AuditAction.RESTORE]


def test_a_restore_stays_closed_while_the_live_ledger_does_not_answer() -> None:
    site, backup = _site_with_backup(unreadable={"neonpro"})
    report = svc.restore_backup(site, backup, "postgresql://h/fresh")
    assert report.held
    assert not report.erasures_proven
    assert not report.ok
    assert report.finish == svc.finish_command(backup.id)
    assert "could not prove" in site.server.held["fresh"]
    assert ("lift", "fresh") not in site.server.calls
    assert any("could not be read (OperationalError)" in w for w in report.warnings)

    # finishing it refuses too while the ledger does not answer: still closed
    with pytest.raises(BackupError, match="could not be read"):
        svc.finish_restore(site, backup, "postgresql://h/fresh")
    assert "fresh" in site.server.held


def test_accepting_the_erasure_risk_opens_it_and_is_recorded() -> None:
    site, backup = _site_with_backup(unreadable={"neonpro"})
    report = svc.restore_backup(site, backup, "postgresql://h/fresh",
                                accept_erasure_risk=True)
    assert not report.held
    assert "fresh" not in site.server.held
    (opened,) = site.opened
    risky = [e for e in opened.events() if e["risk"] == RiskLevel.CRITICAL]
    assert [e["details"]["accepted_risk"] for e in risky] == [True]


def test_finishing_into_the_live_database_itself_needs_the_risk_accepted() -> None:
    site, backup = _site_with_backup()
    with pytest.raises(BackupError, match="live database itself"):
        svc.finish_restore(site, backup, "postgresql://h/neonpro")
    done = svc.finish_restore(site, backup, "postgresql://h/neonpro",
                              accept_erasure_risk=True)
    assert not done.erasures_proven
    assert ("lift", "neonpro") in site.server.calls


def test_the_ledger_of_a_target_about_to_be_replaced_must_answer() -> None:
    site, backup = _site_with_backup(databases={"neonpro": False, "old": False},
                                     unreadable={"old"})
    with pytest.raises(BackupError, match="nothing was changed"):
        svc.restore_backup(site, backup, "postgresql://h/old", force=True)
    assert site.server.calls == []


# ----------------------------------------------------------------------------- verify
def test_compare_names_rows_checksums_and_heads() -> None:
    tables = {"a": {"rows": 2, "checksum": "x"}, "b": {"rows": 1, "checksum": "y"},
              "c": {"rows": 1, "checksum": "z", "method": "hash64"}}
    backup = _backup(T0, tables=tables, audit={"chains": {"c1": "h1"}})
    server = FakeServer(stats=({"a": {"rows": 3, "checksum": "x", "method": "md5"},
                                "b": {"rows": 1, "checksum": "?", "method": "md5"},
                                "c": {"rows": 1, "checksum": "?", "method": "hash64"},
                                "d": {"rows": 0, "checksum": "", "method": "md5"}},
                               {"chains": {"c1": "h2"}}), major=18)
    assert svc.compare(server, backup, LIVE) == [
        "table a: 3 rows, manifest says 2",
        "table b: checksum differs from the manifest",
        # c: hash64 is only comparable within one PostgreSQL major
        "table d: unexpected",
        "audit chain heads differ from the manifest"]
    server.major = 17
    assert "table c: checksum differs from the manifest" in svc.compare(server, backup, LIVE)


def test_a_corrupt_backup_fails_verify_and_the_scratch_copy_goes() -> None:
    site = FakeSite()
    backup = site.store.add(_backup(T0))

    def corrupt(b: Backup) -> None:
        raise CorruptBackup("data.dump does not match its SHA-256 in the manifest")

    site.store.check_files = corrupt  # type: ignore[method-assign]
    report = svc.verify_backup(site, backup)
    assert not report.ok
    assert report.problems == ["data.dump does not match its SHA-256 in the manifest"]
    assert [c for c, _ in site.server.calls] == ["drop"]
    assert site.store.verifications[backup.id]["ok"] is False
    (event,) = site.events()
    assert (event["action"], event["status"]) == (AuditAction.VERIFY, AuditStatus.FAILURE)


def test_verify_reports_broken_chains() -> None:
    site = FakeSite()
    site.server.chains = [ChainCheck(LIVE_CLINIC, 5, None, None),
                          ChainCheck(LIVE_CLINIC, 2, 3, "hash mismatch")]
    report = svc.verify_backup(site, site.store.add(_backup(T0)))
    assert report.audit_events_verified == 7
    assert report.problems == [f"audit chain of clinic {LIVE_CLINIC} broken at 3: hash mismatch"]
    assert site.server.databases == {"neonpro": False}  # the scratch copy is gone


# ----------------------------------------------------------------------------- drill
def test_the_drill_measures_against_its_targets() -> None:
    same = {"patients": {"rows": 3, "checksum": "c", "method": "md5"}}  # as dumped
    site = FakeSite(server=FakeServer(rpo=(svc.RPO_TARGET_S + 1.0, "WAL archiving"),
                                      stats=(same, {"chains": {}})))
    report = svc.drill(site)
    assert report.rpo_seconds == svc.RPO_TARGET_S + 1.0
    assert report.problems == [f"RPO {svc.RPO_TARGET_S + 1:.0f} s is over the "
                               f"{svc.RPO_TARGET_S} s target"]
    assert not report.ok
    assert site.store.verifications[report.backup_id]["by"] == "drill"
    assert site.server.databases == {"neonpro": False}  # the scratch copy is gone


# ----------------------------------------------------------------------------- the fakes
@pytest.mark.parametrize(("protocol", "fake"), [
    (ports_backup.BackupStore, FakeStore), (ports_backup.DumpTool, FakeDumpTool),
    (ports_backup.ScratchServer, FakeServer), (ports_backup.BackupSite, FakeSite)])
def test_the_fakes_offer_every_method_of_their_port(protocol: type, fake: type) -> None:
    for name, member in vars(protocol).items():
        if name.startswith("_"):
            continue
        assert hasattr(fake, name), f"{fake.__name__} lacks {name}"
        if callable(member):
            want = [p.name for p in inspect.signature(member).parameters.values()]
            got = [p.name for p in inspect.signature(getattr(fake, name)).parameters.values()]
            assert got == want, name
