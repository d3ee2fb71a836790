"""Logical backups: round trip, corruption, encryption, the overwrite guard, erasures that
survive a restore, pruning, the drill, and the audit events of each step."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from neonpro.adapters.backup.pgtools import target_from_url
from neonpro.adapters.backup.stream import sha256_file
from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import backup as svc
from neonpro.services import clinics, erasure, patients
from tests.conftest import create_database, drop_database, make_keyring, make_settings
from tests.factories import seed_world
from tests.sessions import service_session
from tests.valid import cpf

DPO = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e7"), "dpo")


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# An independent whole-table fingerprint (not the manifest's own checksum code): every row's
# text, sorted, hashed. Read as a superuser login, so row-level security does not apply.
_FINGERPRINT = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1")


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    out = {}
    with psycopg.connect(_plain(url)) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for (table,) in conn.execute(_FINGERPRINT).fetchall():
            row = conn.execute(
                f'SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) '
                f'FROM public."{table}" t').fetchone()
            assert row is not None
            out[table] = (row[0], row[1])
    return out


@pytest.fixture
def source(admin_url: str, tmp_path: Path) -> Iterator[tuple[Container, uuid.UUID]]:
    """A migrated database with one row in every table and two real patients."""
    url = create_database(admin_url, "bksrc")
    migrate.upgrade(url, Roles())
    box = Container(make_settings(url, backup_dir=tmp_path / "backups"), database_url=url,
                    keyring=make_keyring())
    try:
        clinic = clinics.create_clinic(box.service_uow(DPO), ClinicCreate(name="Backup")).id
        with service_session(box.database, DPO.id) as session:
            ids = seed_world(session, clinic)
            # seed_world's ledger entry names its patient: make that patient erased, as the
            # engine would have (else every restore rightly re-applies that erasure)
            session.execute(text("UPDATE patients SET anonymized_at = now() WHERE id = :p"),
                            {"p": ids["patients"]})
        for n in (1, 2):
            patients.register_patient(box.uow(clinic, DPO), PatientCreate(
                full_name=f"Teodora Backup {n}", cpf=cpf(9100 + n),
                birth_date=date(1990, 1, n)))
        box.seal_audit()
        yield box, clinic
    finally:
        box.close()
        drop_database(admin_url, url)


@pytest.fixture
def target(second_database_url: str) -> str:
    return second_database_url


def _events(box: Container, action: str) -> int:
    with service_session(box.database, DPO.id) as s:
        return int(s.execute(text("SELECT count(*) FROM audit_events WHERE action = :a "
                                  "AND resource_type = 'backup'"), {"a": action}).scalar_one())


def test_round_trip_loses_nothing(source: tuple[Container, uuid.UUID], target: str) -> None:
    box, _clinic = source
    before = fingerprint(box.database.owner_url)
    backup = svc.create_backup(box)
    assert set(backup.manifest["files"]) == {"schema", "data", "owner-data", "ledger"}
    assert backup.manifest["migration_head"] == migrate.head_revision()
    assert backup.manifest["tables"]["patients"]["rows"] == before["patients"][0]
    assert backup.manifest["audit"]["chains"], "the audit chain heads are in the manifest"
    assert _events(box, "BACKUP") == 1

    report = svc.verify_backup(box, backup)
    assert report.ok, report.problems
    assert report.audit_events_verified > 0
    assert svc.find(box.backup_store(), backup.id).verified  # verify.json, beside it
    assert _events(box, "VERIFY") == 1

    restored = svc.restore_backup(box, backup, target)
    assert restored.ok, restored.problems
    after = fingerprint(target)
    # the restore appends its own audit event (and the commit tokens of its own writes and
    # health check) and the migration head is the same
    own = ("audit_events", "commit_tokens")
    assert {t: v for t, v in after.items() if t not in own} == {
        t: v for t, v in before.items() if t not in own}
    with psycopg.connect(_plain(target)) as conn:
        rows = conn.execute("SELECT action FROM audit_events WHERE resource_type = 'backup' "
                            "ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == ["RESTORE"]  # the BACKUP event comes after its snapshot
    assert after["audit_events"][0] == before["audit_events"][0] + 1

    # the manifest's checksums see a single changed value, and a missing row
    restored_events = before["audit_events"][0] + 1  # its RESTORE event, sealed
    differences = svc.compare(box.scratch_server, backup, target_from_url(_plain(target)))
    assert [d for d in differences if not d.startswith("table commit_tokens: ")] == [
        f"table audit_events: {restored_events} rows, manifest says {restored_events - 1}",
        "audit chain heads differ from the manifest"]  # (and the restore's commit tokens)
    with psycopg.connect(_plain(target)) as conn:
        conn.execute("ALTER TABLE service_types DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE erasure_ledger DISABLE TRIGGER USER")  # its guard too
        conn.execute("UPDATE service_types SET duration_minutes = duration_minutes + 1")
        conn.execute("DELETE FROM erasure_ledger WHERE id = (SELECT min(id::text)::uuid "
                     "FROM erasure_ledger)")
    problems = svc.compare(box.scratch_server, backup, target_from_url(_plain(target)))
    assert "table service_types: checksum differs from the manifest" in problems
    assert any(p.startswith("table erasure_ledger: ") and "rows" in p for p in problems)


def test_a_corrupted_file_is_detected_and_never_restored(
        source: tuple[Container, uuid.UUID], target: str) -> None:
    box, _clinic = source
    backup = svc.create_backup(box)
    data = backup.path / "data.dump"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))

    report = svc.verify_backup(box, backup)
    assert not report.ok
    assert any("SHA-256" in p for p in report.problems)
    assert not svc.find(box.backup_store(), backup.id).verified
    with pytest.raises(svc.CorruptBackup):
        svc.restore_backup(box, backup, target)
    with psycopg.connect(_plain(target)) as conn:  # the target was not touched
        count = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                             "n.oid = c.relnamespace WHERE n.nspname = 'public'").fetchone()
    assert count == (0,)

    data.write_bytes(bytes(raw[: len(raw) // 3]))  # truncated
    report = svc.verify_backup(box, backup)
    assert not report.ok
    assert any("truncated" in p for p in report.problems)


def test_encrypted_backups_round_trip_and_detect_tampering(
        source: tuple[Container, uuid.UUID], target: str, tmp_path: Path) -> None:
    box, _clinic = source
    key = base64.b64encode(os.urandom(32)).decode()
    url = box.database.owner_url
    enc = Container(make_settings(url, backup_dir=tmp_path / "enc", backup_key=key),
                    database_url=url, keyring=box.keyring)
    try:
        backup = svc.create_backup(enc)
        assert backup.manifest["encrypted"]
        raw = (backup.path / "data.dump").read_bytes()
        assert raw.startswith(b"NPBK")
        assert b"PGDMP" not in raw  # no plaintext archive header anywhere
        assert svc.verify_backup(enc, backup).ok
        # cut off the last chunk and make the manifest agree: only the cipher can tell
        (backup.path / "data.dump").write_bytes(raw[: len(raw) - 40])
        manifest = json.loads((backup.path / "manifest.json").read_text())
        manifest["files"]["data"].update(
            sha256=sha256_file(backup.path / "data.dump"), bytes=len(raw) - 40)
        (backup.path / "manifest.json").write_text(json.dumps(manifest))
        forged = svc.find(enc.backup_store(backup.path.parent), backup.id)
        report = svc.verify_backup(enc, forged)
        assert not report.ok
        assert any("truncated" in p or "does not decrypt" in p for p in report.problems)
        # the wrong key is refused, not restored
        wrong = Container(make_settings(url, backup_dir=tmp_path / "enc",
                                        backup_key=base64.b64encode(os.urandom(32)).decode()),
                          database_url=url, keyring=box.keyring)
        good = svc.create_backup(enc)
        try:
            with pytest.raises(svc.CorruptBackup):
                svc.restore_backup(wrong, good, target)
        finally:
            wrong.close()
        assert svc.restore_backup(enc, good, target, force=True).ok
    finally:
        enc.close()


def test_restore_refuses_a_non_empty_database_without_force(
        source: tuple[Container, uuid.UUID], target: str) -> None:
    box, clinic = source
    backup = svc.create_backup(box)
    assert svc.restore_backup(box, backup, target).ok
    patients.register_patient(box.uow(clinic, DPO), PatientCreate(
        full_name="Depois Do Backup", cpf=cpf(9150)))
    newer = svc.create_backup(box)
    before = fingerprint(target)
    with pytest.raises(svc.RestoreRefused, match="not empty"):
        svc.restore_backup(box, newer, target)
    assert fingerprint(target) == before  # nothing changed
    assert svc.restore_backup(box, newer, target, force=True).ok
    assert fingerprint(target)["patients"][0] == before["patients"][0] + 1


def test_an_erasure_after_the_backup_survives_its_restore(
        source: tuple[Container, uuid.UUID], target: str, admin_url: str) -> None:
    box, clinic = source
    kept = patients.register_patient(box.uow(clinic, DPO), PatientCreate(
        full_name="Permanece Aqui", cpf=cpf(9201)))
    gone = patients.register_patient(box.uow(clinic, DPO), PatientCreate(
        full_name="Esquecida Depois", cpf=cpf(9202), email="esquecida@exemplo.test"))
    backup = svc.create_backup(box)  # holds the patient unerased
    done = erasure.erase_patient(box.admin_uow(clinic, DPO), gone.id)
    assert done.outcome == "anonymized"

    report = svc.restore_backup(box, backup, target)
    assert report.ok, report.problems
    assert report.reapplied_erasures == 1
    with psycopg.connect(_plain(target)) as conn:
        rows = dict(conn.execute(
            "SELECT id, anonymized_at IS NOT NULL FROM patients WHERE id = ANY(%s)",
            ([kept.id, gone.id],)).fetchall())
        names = [r[0] for r in conn.execute("SELECT full_name FROM patients").fetchall()]
        ledger = conn.execute("SELECT count(*) FROM erasure_ledger WHERE patient_id = %s",
                              (gone.id,)).fetchone()
    assert rows.get(kept.id) is False
    assert gone.id not in rows or rows[gone.id] is True
    assert "Esquecida Depois" not in names
    assert ledger == (2,)  # the original decision, and the record of its re-application

    # the same holds when the live database is gone: a later backup's ledger is used
    svc.create_backup(box)
    nowhere = "postgresql://nobody@127.0.0.1:1/none"
    lost = Container(make_settings(nowhere, backup_dir=box.settings.backup_dir),
                     database_url=nowhere, keyring=box.keyring)
    later = svc.later_ledgers(box.backup_store(), backup)
    assert str(gone.id) in {e["patient_id"] for e in later}
    second = create_database(admin_url, "bkdst2")
    try:
        report = svc.restore_backup(lost, backup, second)
        # what the later backup knows is re-applied; what only the live ledger knew cannot
        # be proven: the restore says so and leaves the database closed (test_restore_hold)
        assert report.held
        assert not report.ok
        assert report.reapplied_erasures == 1
        with psycopg.connect(_plain(second)) as conn:
            names = [r[0] for r in conn.execute("SELECT full_name FROM patients").fetchall()]
        assert "Esquecida Depois" not in names
        assert "Permanece Aqui" in names
    finally:
        lost.close()
        drop_database(admin_url, second)


def test_a_record_anonymized_after_its_hold_comes_back_anonymized(
        source: tuple[Container, uuid.UUID], target: str) -> None:
    box, clinic = source
    held = patients.register_patient(box.uow(clinic, DPO), PatientCreate(
        full_name="Prontuario Vencido", cpf=cpf(9301), blood_type="O+"))  # a clinical record
    first = erasure.erase_patient(box.admin_uow(clinic, DPO), held.id)
    assert first.outcome == "blocked"
    backup = svc.create_backup(box)  # holds the record blocked, not anonymized
    uow = box.admin_uow(clinic, DPO)
    with uow:  # 20 years later: the retention engine anonymizes it
        assert erasure.erase_in(uow, held.id, hold_expired=True).outcome == "anonymized"
        uow.commit()

    report = svc.restore_backup(box, backup, target)
    assert report.ok, report.problems
    assert report.reapplied_erasures == 1
    with psycopg.connect(_plain(target)) as conn:
        row = conn.execute("SELECT anonymized_at IS NOT NULL, full_name FROM patients "
                           "WHERE id = %s", (held.id,)).fetchone()
    assert row is not None
    assert row[0] is True
    assert row[1] != "Prontuario Vencido"


def test_drill_measures_recovery(source: tuple[Container, uuid.UUID]) -> None:
    box, _clinic = source
    report = svc.drill(box, wal_wait_s=5)
    assert report.ok, report.problems
    assert 0 < report.rto_seconds < svc.RTO_TARGET_S
    assert {"backup", "restore.pg_restore", "restore.migrate", "audit_verify"} <= set(
        report.steps)
    if report.rpo_seconds is None:  # this server archives no WAL
        assert "no WAL archiving" in report.rpo_basis
    with psycopg.connect(_plain(box.database.owner_url)) as conn:
        leftovers = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE "
                                 "'neonpro_drill_%%'").fetchone()
    assert leftovers == (0,)


def test_a_restore_keeps_the_consent_ledger_order_ahead(
        source: tuple[Container, uuid.UUID], target: str) -> None:
    """The consent ledger's order (entry_no, from an owner-only sequence) survives a
    restore: the rows keep their numbers, and the next row is numbered after them (else a
    revocation recorded after the restore would rank below the grants before it)."""
    box, _clinic = source
    with service_session(box.database, DPO.id) as s:
        before = s.execute(text("SELECT id, entry_no FROM consent_records ORDER BY entry_no")
                           ).all()
    assert before
    backup = svc.create_backup(box)
    report = svc.restore_backup(box, backup, target)
    assert report.ok, report.problems
    with psycopg.connect(_plain(target)) as conn:
        after = conn.execute("SELECT id, entry_no FROM consent_records ORDER BY entry_no"
                             ).fetchall()
        following = conn.execute("SELECT nextval('consent_records_entry_no_seq')").fetchone()
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert following is not None
    assert following[0] > before[-1][1]
