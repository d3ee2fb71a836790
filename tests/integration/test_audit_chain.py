"""The tamper-evident audit trail: triggers, sealing, verification, checkpoints."""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import audit as chains
from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import (
    export_checkpoints,
    load_checkpoints,
    verify_chains,
)
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.ports_auth import IssuedToken
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate, PatientUpdate
from neonpro.domain.vocabulary import AuditAction, ClinicRole
from neonpro.services import auth, clinics, patients
from tests.conftest import make_keyring, make_settings
from tests.sessions import service_session, set_clinic, tenant_session
from tests.tamper import as_owner, owner_url

ME = Actor(uuid.UUID("00000000-0000-0000-0000-00000000a0d1"), "admin", ip_address="2001:db8::7",
           request_id="req-42", user_agent="pytest", session_id="s-1")
SYSTEM = Actor(uuid.UUID("00000000-0000-0000-0000-00000000a0d2"), "system")


@pytest.fixture
def box(fresh_database_url: str, roles: Roles) -> Iterator[Container]:
    migrate.upgrade(fresh_database_url, roles)
    container = Container(make_settings(fresh_database_url), database_url=fresh_database_url,
                          keyring=make_keyring())
    try:
        yield container
    finally:
        container.close(seal=False)


def _new_clinic(box: Container, name: str) -> uuid.UUID:
    """A clinic, and ME's session in it (a session id must name a live session)."""
    clinic = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name=name)).id
    auth.open_development_session(box.service_uow(SYSTEM), IssuedToken(
        "", "s-1", ME.id, clinic, ClinicRole.ADMIN, datetime.now(UTC) + timedelta(hours=1)))
    return clinic


def _clinic(box: Container, n_patients: int = 3) -> uuid.UUID:
    clinic = _new_clinic(box, "Audit")
    for i in range(n_patients):
        created = patients.register_patient(box.uow(clinic, ME), PatientCreate(
            full_name=f"Pessoa {i}", patient_notes="nota clínica"))
        patients.update_patient(box.uow(clinic, ME), created.id,
                                PatientUpdate(version=1, city="Recife"))
    return clinic


def seal_pending(box: Container, clinic: uuid.UUID | None = None) -> int:
    return chains.seal_pending(box.database, box.keyring, SYSTEM, clinic)


def prune_expired(box: Container, archive: Path, clinic: uuid.UUID, *, dry_run: bool = False,
                  ) -> list[chains.PruneResult]:
    return chains.prune_expired(box.database, box.keyring, SYSTEM, archive, clinic,
                                dry_run=dry_run)


def _owner(box: Container, *statements: str) -> None:
    as_owner(box, *statements)


def _report(box: Container, clinic: uuid.UUID, **kw: object):  # type: ignore[no-untyped-def]
    reports = verify_chains(box.database, SYSTEM, box.keyring, clinic, **kw)  # type: ignore[arg-type]
    return next(r for r in reports if r.clinic_id == clinic and r.chain == "audit_events")


def test_triggers_record_changes_with_field_names_only(box: Container) -> None:
    clinic = _clinic(box, 1)
    with service_session(box.database, SYSTEM.id) as s:
        rows = s.execute(text(
            "SELECT action, resource_type, details, actor_id, host(ip_address), request_id, "
            "user_agent, session_id, patient_ref FROM audit_events "
            "WHERE clinic_id = :c AND resource_type = 'patients' ORDER BY occurred_at, action"),
            {"c": clinic}).all()
    actions = [r.action for r in rows]
    assert actions == ["CREATE", "UPDATE"]
    create, update = rows
    assert "full_name" in create.details["fields"]
    assert "patient_notes_encrypted" in create.details["fields"]
    assert update.details == {"fields": ["city"], "source": "trigger"}
    assert (create.actor_id, create.host, create.request_id) == (ME.id, "2001:db8::7", "req-42")
    assert (create.user_agent, create.session_id) == ("pytest", "s-1")
    assert create.patient_ref is not None
    assert len(bytes(create.patient_ref)) == 32
    text_dump = str(rows)
    assert "Pessoa" not in text_dump
    assert "Recife" not in text_dump
    assert "nota" not in text_dump


def test_raw_sql_and_bulk_updates_are_audited_too(box: Container) -> None:
    clinic = _clinic(box, 2)
    with tenant_session(box.database, clinic, SYSTEM.id, "system") as s:
        changed = s.execute(text("UPDATE patients SET city = 'Olinda'")).rowcount
        count = s.execute(text(
            "SELECT count(*) FROM audit_events WHERE resource_type = 'patients' "
            "AND action = 'UPDATE' AND actor_id = :a"), {"a": SYSTEM.id}).scalar_one()
    assert changed == 2
    assert count == 2


def test_a_write_without_an_acting_user_is_refused(box: Container) -> None:
    clinic = _clinic(box, 1)
    engine = box.database.engine("app")
    with pytest.raises(DBAPIError, match="no acting user"), engine.begin() as conn:
        conn.execute(text("SELECT set_config('role', 'neonpro_app', true)"))
        set_clinic(conn.connection.driver_connection, clinic)  # reaches the workers on Citus
        conn.execute(text("UPDATE patients SET city = 'Natal'"))


def test_sealed_chain_verifies(box: Container) -> None:
    clinic = _clinic(box)
    assert seal_pending(box) > 0
    report = _report(box, clinic)
    assert report.ok, report
    assert report.unsealed == 0
    assert report.sealed == report.head_seq >= 6


def test_unsealed_tail_is_reported_then_sealed(box: Container) -> None:
    clinic = _clinic(box, 1)
    before = _report(box, clinic)
    assert before.ok
    assert before.unsealed > 0
    assert before.sealed == 0
    seal_pending(box, clinic)
    after = _report(box, clinic)
    assert (after.unsealed, after.sealed) == (0, before.unsealed)


def test_fast_and_reference_verifiers_hash_tricky_details_alike(box: Container) -> None:
    clinic = _clinic(box, 0)
    tricky = {
        "é": 'quote " backslash \\ newline \n tab \t ctrl \u0001 unicode ção 🙂',
        "aa": [1, -2, 30000000000, True, False, None, {"z": "", "b": []}],
        "b": {"nested": {"k": "v"}}, "n": None, "dec": 1,
    }
    mapped = Actor(ME.id, "admin", ip_address="::ffff:10.1.2.3", user_agent="agent ção")
    with box.uow(clinic, mapped) as tx:
        tx.audit.record(AuditAction.VIEW, details=tricky)
        tx.connection.execute(text(  # the clinic named: Citus routes an insert by it
            "INSERT INTO audit_events (clinic_id, action, details) "
            "VALUES (:c, 'VIEW', '{\"x\": 1.50, \"y\": 1e3}'::jsonb)"), {"c": clinic})
        tx.commit()
    seal_pending(box, clinic)
    assert _report(box, clinic).ok  # the fast (text) verifier, which also sealed them
    # the reference verifier re-renders every field, details included, in Python
    assert _report(box, clinic, reference=True).ok


def test_concurrent_writers_and_sealers_make_one_gap_free_chain(box: Container) -> None:
    clinic = _clinic(box, 1)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(5):
                patients.register_patient(box.uow(clinic, ME), PatientCreate(
                    full_name=f"Concorrente {n}-{i}"))
                seal_pending(box, clinic)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seal_pending(box)
    report = _report(box, clinic)
    assert report.ok, report
    with service_session(box.database, SYSTEM.id) as s:
        seqs = list(s.execute(text("SELECT seq FROM audit_events WHERE clinic_id = :c "
                                   "ORDER BY seq"), {"c": clinic}).scalars())
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= 30


@pytest.mark.parametrize(("tamper", "reason"), [
    ("UPDATE audit_events SET action = 'EXPORT' WHERE clinic_id = '{c}' AND seq = 3", "edited"),
    ("UPDATE audit_events SET details = '{{}}' WHERE clinic_id = '{c}' AND seq = 4", "edited"),
    ("DELETE FROM audit_events WHERE clinic_id = '{c}' AND seq = 3", "missing event"),
    ("UPDATE audit_events SET seq = 1000000 WHERE clinic_id = '{c}' AND seq = 3 ;; "
     "UPDATE audit_events SET seq = 3 WHERE clinic_id = '{c}' AND seq = 4 ;; "
     "UPDATE audit_events SET seq = 4 WHERE clinic_id = '{c}' AND seq = 1000000", "reordered"),
])
def test_tampering_as_the_owner_is_detected(box: Container, tamper: str, reason: str) -> None:
    clinic = _clinic(box)
    seal_pending(box)
    assert _report(box, clinic).ok
    _owner(box, *tamper.format(c=clinic).split(" ;; "))
    report = _report(box, clinic)
    reference = _report(box, clinic, reference=True)
    assert (reference.broken_at, reference.reason) == (report.broken_at, report.reason)
    assert not report.ok
    expected = 4 if "seq = 4" in tamper and "seq = 3" not in tamper else 3
    assert report.broken_at == expected
    assert reason in (report.reason or "")


def test_an_inserted_event_is_detected(box: Container) -> None:
    clinic = _clinic(box)
    seal_pending(box)
    _owner(box,
           f"UPDATE audit_events SET seq = seq + 1000 WHERE clinic_id = '{clinic}' AND seq >= 3",
           f"UPDATE audit_events SET seq = seq - 999 WHERE clinic_id = '{clinic}' AND seq >= 1003",
           f"INSERT INTO audit_events (clinic_id, id, seq, action, retain_until, prev_hash, hash) "
           f"SELECT '{clinic}', gen_random_uuid(), 3, 'VIEW', current_date, hash, hash "
           f"FROM audit_events WHERE clinic_id = '{clinic}' AND seq = 2")
    report = _report(box, clinic)
    assert not report.ok
    assert report.broken_at == 3


def test_checkpoints_detect_truncation_and_forgery(box: Container) -> None:
    clinic = _clinic(box)
    cps = load_checkpoints(export_checkpoints(box.database, box.keyring, SYSTEM))
    ok = _report(box, clinic, checkpoints=cps)
    assert ok.ok
    assert ok.checkpoint == "matches"
    head = ok.head_seq
    _owner(box, f"DELETE FROM audit_events WHERE clinic_id = '{clinic}' AND seq >= {head - 1}")
    assert _report(box, clinic).ok  # without a checkpoint the shorter chain looks fine
    cut = _report(box, clinic, checkpoints=cps)
    assert not cut.ok
    assert "events were deleted" in (cut.reason or "")
    forged = [dataclasses.replace(c, seq=c.seq - 2) for c in cps]
    bad = _report(box, clinic, checkpoints=forged)
    assert "signature invalid" in (bad.reason or "")


def test_sealing_cannot_rewrite_content(box: Container) -> None:
    clinic = _clinic(box, 1)
    engine = create_engine(owner_url(box), poolclass=NullPool)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET seq = 77, hash = '\\x01', action = 'EXPORT' "
                          "WHERE clinic_id = :c"), {"c": clinic})
    engine.dispose()


def test_reads_are_audited_in_the_same_transaction(box: Container) -> None:
    clinic = _clinic(box, 1)
    with box.uow(clinic, ME) as tx:
        pid = tx.patients.list().items[0].id
    patients.get_patient(box.uow(clinic, ME), pid)
    found = patients.find_patient_by_cpf(box.uow(clinic, ME), "111.444.777-35")
    assert found is None
    with service_session(box.database, SYSTEM.id) as s:
        views = s.execute(text(
            "SELECT resource_id, patient_ref = neonpro_patient_ref(:p) AS mine, details "
            "FROM audit_events WHERE clinic_id = :c AND action = 'VIEW' ORDER BY occurred_at"),
            {"c": clinic, "p": pid}).all()
    assert [(v.resource_id, v.mine) for v in views] == [(str(pid), True), (None, None)]
    assert views[1].details == {"found": False, "lookup": "cpf"}
    assert "11144477735" not in str(views)


def test_a_failed_change_leaves_no_event(box: Container) -> None:
    clinic = _clinic(box, 0)
    count = text("SELECT count(*) FROM audit_events WHERE clinic_id = :c")
    with service_session(box.database, SYSTEM.id) as s:
        before = s.execute(count, {"c": clinic}).scalar_one()
    with pytest.raises(ValueError, match="boom"), box.uow(clinic, ME) as tx:
        tx.patients.add(PatientCreate(full_name="Never Saved"))
        raise ValueError("boom")
    with service_session(box.database, SYSTEM.id) as s:
        assert s.execute(count, {"c": clinic}).scalar_one() == before


def _old_events(box: Container, clinic: uuid.UUID, years: int, count: int) -> None:
    engine = create_engine(owner_url(box), poolclass=NullPool)
    with engine.begin() as conn:  # the owner (an import) may set the time; the app may not
        conn.execute(text("SELECT neonpro_bind_context(:c, :a, 'system', '', '', '', '')"),
                     {"c": str(clinic), "a": str(SYSTEM.id)})
        for _ in range(count):
            conn.execute(text(
                "INSERT INTO audit_events (clinic_id, action, resource_type, occurred_at) "
                f"VALUES (:c, 'VERIFY', 'system', now() - interval '{years} years')"),
                {"c": clinic})
    engine.dispose()


def test_the_application_cannot_backdate_an_event(box: Container) -> None:
    clinic = _clinic(box, 0)
    with tenant_session(box.database, clinic, ME.id, "admin") as s:
        s.execute(text("INSERT INTO audit_events (clinic_id, action, occurred_at) "
                       "VALUES (:c, 'VIEW', '2001-01-01')"), {"c": clinic})
        year = s.execute(text("SELECT extract(year FROM max(occurred_at)) FROM audit_events "
                              "WHERE action = 'VIEW'")).scalar_one()
    assert int(year) >= 2026


def test_retention_prunes_whole_expired_segments_behind_a_signed_cut(
    box: Container, tmp_path: Path
) -> None:
    clinic = _new_clinic(box, "Old")
    _old_events(box, clinic, 4, 5)       # 3-year category: expired
    seal_pending(box)
    patients.register_patient(box.uow(clinic, ME), PatientCreate(full_name="Recente"))
    seal_pending(box)
    _old_events(box, clinic, 4, 2)       # expired, but after a live event: kept (whole segments)
    seal_pending(box)
    dry = prune_expired(box, tmp_path, clinic, dry_run=True)
    assert [r.upto_seq for r in dry] == [5]
    done = prune_expired(box, tmp_path, clinic)
    assert [(r.upto_seq, r.pruned) for r in done] == [(5, 5)]
    with gzip.open(done[0].archive) as stored:
        archive = [json.loads(line) for line in stored.read().splitlines()]
    assert [e["seq"] for e in archive] == [1, 2, 3, 4, 5]
    seal_pending(box)
    report = _report(box, clinic)
    assert report.ok, report
    assert report.first_seq == 6
    assert prune_expired(box, tmp_path, clinic) == []  # idempotent
    _owner(box, f"UPDATE audit_chain_cuts SET archive_sha256 = repeat('0', 64) "
                f"WHERE clinic_id = '{clinic}'")
    assert "cut signature invalid" in (_report(box, clinic).reason or "")


def test_the_background_sealer_seals_shortly_after_commit(box: Container) -> None:
    import time  # noqa: PLC0415

    clinic = _clinic(box, 0)
    box.start_sealer(interval=0.05)
    patients.register_patient(box.uow(clinic, ME), PatientCreate(full_name="Selada"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _report(box, clinic).unsealed:
        time.sleep(0.05)
    report = _report(box, clinic)
    assert report.ok
    assert report.unsealed == 0
    assert report.sealed >= 1
