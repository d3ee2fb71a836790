"""Key rotation and blind-index re-keying on a real PostgreSQL, and key file upkeep."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from neonpro.adapters.crypto import (
    DecryptionError,
    KeyConfigError,
    KeyRing,
    activate_key_in_file,
    add_key_to_file,
    generate_key_file,
    load_keyring,
    next_key_id,
    pending_blind_index_key,
    promote_blind_index_key,
    remove_key_from_file,
)
from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import verify_chains
from neonpro.adapters.db.keys_sql import SqlKeyBatch
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain import values
from neonpro.domain.actors import Actor
from neonpro.domain.ports_keys import key_header
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate, PatientUpdate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.services import catalog, clinics, patients
from neonpro.services import keys as svc
from tests.conftest import make_keyring, make_settings
from tests.sessions import service_session
from tests.valid import cns, cpf

STAFF = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000c1"), "receptionist")
ADMIN = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000c2"), "system")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PATIENTS_PER_CLINIC = 5
APPOINTMENTS_PER_CLINIC = 4
N_PATIENT_VALUES = 2 * PATIENTS_PER_CLINIC * 7
N_APPOINTMENT_VALUES = 2 * APPOINTMENTS_PER_CLINIC * 2
TOTAL = N_PATIENT_VALUES + N_APPOINTMENT_VALUES
SECRET_NOTE = "nota-secreta-"


@dataclass
class World:
    url: str
    ring1: KeyRing  # k1 only: the "old" processes
    ring2: KeyRing  # k1 and k2, k2 active: after `keys add`
    boxes: list[Container] = field(default_factory=list)
    patients: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # id -> clinic
    appointments: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    def box(self, ring: KeyRing) -> Container:
        box = Container(make_settings(self.url), database_url=self.url, keyring=ring)
        self.boxes.append(box)
        return box

    @property
    def k2_only(self) -> KeyRing:
        return KeyRing(keys={"k2": self.ring2.keys["k2"]}, active_id="k2",
                       blind_index_key=self.ring2.blind_index_key)

    def snapshot(self, box: Container) -> dict[uuid.UUID, dict[str, Any]]:
        """Every record, decrypted through the repositories (less ``updated_at``, which the
        database's touch trigger sets on every UPDATE, a rotation's included)."""
        out: dict[uuid.UUID, dict[str, Any]] = {}
        for pid, clinic in self.patients.items():
            with box.uow(clinic, STAFF) as tx:
                out[pid] = tx.patients.get(pid).model_dump(exclude={"updated_at"})
        for aid, clinic in self.appointments.items():
            with box.uow(clinic, STAFF) as tx:
                out[aid] = tx.appointments.get(aid).model_dump(exclude={"updated_at"})
        return out

    def raw(self, box: Container, sql: str, **params: Any) -> list[Any]:
        with service_session(box.database, ADMIN.id) as session:
            return list(session.execute(text(sql), params).all())


@pytest.fixture
def world(fresh_database_url: str) -> Iterator[World]:
    migrate.upgrade(fresh_database_url, Roles())
    ring1 = make_keyring()
    w = World(fresh_database_url, ring1, ring1.with_new_active("k2", os.urandom(32)))
    box = w.box(ring1)
    n = 0
    for c in range(2):
        clinic = clinics.create_clinic(box.service_uow(ADMIN), ClinicCreate(name=f"C{c}")).id
        prof = catalog.add_professional(box.uow(clinic, STAFF),
                                        ProfessionalCreate(full_name="Dra. Ana")).id
        first = None
        for _ in range(PATIENTS_PER_CLINIC):
            n += 1
            p = patients.register_patient(box.uow(clinic, STAFF), PatientCreate(
                full_name=f"Paciente {n}", cpf=cpf(n), cns=cns(n), rg="12.345.678-9",
                passport_number="FX123456", emergency_contact_cpf=cpf(500 + n),
                patient_notes=f"{SECRET_NOTE}{n}", internal_notes=f"interna {n}",
            ))
            w.patients[p.id] = clinic
            first = first or p.id
        assert first is not None
        for i in range(APPOINTMENTS_PER_CLINIC):
            start = T0 + timedelta(hours=i)
            with box.uow(clinic, STAFF) as tx:
                a = tx.appointments.add(AppointmentCreate(
                    patient_id=first, professional_id=prof, start_time=start,
                    end_time=start + timedelta(minutes=30), clinical_notes=f"queixa {i}",
                    internal_notes=f"obs {i}",
                ), time_zone="America/Sao_Paulo")
                tx.commit()
            w.appointments[a.id] = clinic
    try:
        yield w
    finally:
        for b in w.boxes:
            b.close()


# --------------------------------------------------------------------------- status


def test_status_counts_values_per_key_id_and_column(world: World) -> None:
    status = svc.key_status(world.box(world.ring1))
    assert status.active_key_id == "k1"
    assert status.by_key == {"k1": TOTAL}
    assert status.remaining == 0
    assert status.unknown == []
    per = {(c.table, c.column): c.by_key for c in status.columns}
    assert len(per) == 9
    assert per[("patients", "cpf_encrypted")] == {"k1": 2 * PATIENTS_PER_CLINIC}
    assert per[("appointments", "clinical_notes_encrypted")] == {"k1": 2 * APPOINTMENTS_PER_CLINIC}

    after_add = svc.key_status(world.box(world.ring2))
    assert after_add.active_key_id == "k2"
    assert after_add.by_key == {"k1": TOTAL, "k2": 0}
    assert after_add.remaining == TOTAL
    data = after_add.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["remaining"] == TOTAL


def test_status_names_key_ids_the_ring_lacks(world: World) -> None:
    status = svc.key_status(world.box(world.k2_only))
    assert status.by_key == {"k1": TOTAL, "k2": 0}
    assert ("patients", "cpf_encrypted", "k1") in status.unknown


# --------------------------------------------------------------------------- rotation


def test_rotation_reencrypts_every_value_and_keeps_it(world: World) -> None:
    old_box, new_box = world.box(world.ring1), world.box(world.ring2)
    before = world.snapshot(old_box)
    versions = dict(world.raw(old_box, "SELECT id, version FROM patients UNION ALL "
                                       "SELECT id, version FROM appointments"))
    done: list[int] = []

    report = svc.rotate(new_box, batch_size=3, progress=lambda _t, n: done.append(n))

    assert report.complete
    assert report.to_key == "k2"
    assert (report.rotated, report.skipped) == (TOTAL, 0)
    assert sum(done) == TOTAL
    assert report.batches >= TOTAL // (3 * 7)
    assert report.status.by_key == {"k1": 0, "k2": TOTAL}
    assert report.status.remaining == 0
    assert svc.key_status(new_box).by_key == {"k1": 0, "k2": TOTAL}
    # every value reads back the same, with and without the old key
    assert world.snapshot(new_box) == before
    assert world.snapshot(world.box(world.k2_only)) == before
    # staff edits must not conflict: version untouched
    assert dict(world.raw(old_box, "SELECT id, version FROM patients UNION ALL "
                                   "SELECT id, version FROM appointments")) == versions
    # a process that only knows k1 can no longer read: the message names the key, not data
    pid, clinic = next(iter(world.patients.items()))
    with pytest.raises(DecryptionError, match="unknown key id 'k2'") as err, \
            old_box.uow(clinic, STAFF) as tx:
        tx.patients.get(pid)
    assert SECRET_NOTE not in str(err.value)


def test_rotation_is_audited_by_the_triggers_and_a_summary(world: World) -> None:
    box = world.box(world.ring2)
    svc.rotate(box, batch_size=50)
    summaries = world.raw(box, "SELECT clinic_id, resource_type, resource_id, details "
                               "FROM audit_events WHERE action = 'KEY_ROTATION'")
    assert len(summaries) == 9
    assert {s.clinic_id for s in summaries} == {uuid.UUID(int=0)}
    assert {s.resource_type for s in summaries} == {"encryption_keys"}
    by_column = {s.details["column"]: s.details for s in summaries}
    assert by_column["cpf_encrypted"] == {
        "table": "patients", "column": "cpf_encrypted", "values": 2 * PATIENTS_PER_CLINIC,
        "skipped": 0, "to_key": "k2",
    }
    row_events = world.raw(box, "SELECT details FROM audit_events WHERE action = 'UPDATE' "
                                "AND resource_type = 'patients'")
    assert len(row_events) == 2 * PATIENTS_PER_CLINIC  # one per row, all columns at once
    assert set(row_events[0].details["fields"]) == {
        "cpf_encrypted", "cns_encrypted", "rg_encrypted", "passport_number_encrypted",
        "emergency_contact_cpf_encrypted", "patient_notes_encrypted",
        "internal_notes_encrypted",
    }
    box.seal_audit()
    reports = verify_chains(box.database, ADMIN, box.keyring)
    assert reports
    assert all(r.ok and r.unsealed == 0 for r in reports), [r.as_dict() for r in reports]


def test_interrupted_rotation_resumes_where_it_stopped(world: World) -> None:
    box = world.box(world.ring2)
    before = world.snapshot(box)

    first = svc.rotate(box, batch_size=2, max_batches=1)
    assert not first.complete
    assert first.batches == 1
    assert first.rotated == 2 * 7  # two patient rows, seven values each
    partial = svc.key_status(box)
    assert partial.by_key == {"k1": TOTAL - 14, "k2": 14}
    assert world.snapshot(box) == before  # mixed keys read fine meanwhile

    second = svc.rotate(box, batch_size=2, max_batches=2)
    assert not second.complete
    assert svc.key_status(box).by_key == {"k1": TOTAL - 42, "k2": 42}

    rest = svc.rotate(box, batch_size=2)
    assert rest.complete
    assert rest.rotated == TOTAL - 42
    assert rest.status.by_key == {"k1": 0, "k2": TOTAL}
    assert world.snapshot(box) == before

    again = svc.rotate(box)  # nothing left: a no-op
    assert (again.rotated, again.batches, again.complete) == (0, 0, True)


@pytest.mark.parametrize("editor_ring", ["old", "new"])
def test_a_concurrent_staff_edit_wins(world: World, editor_ring: str) -> None:
    box = world.box(world.ring2)
    editor = world.box(world.ring1 if editor_ring == "old" else world.ring2)
    target: list[uuid.UUID] = []

    def edit_between_read_and_write(table: str, rows: Any) -> None:
        if table != "patients" or target:
            return
        clinic, pid = rows[0]
        target.append(pid)
        with editor.uow(clinic, STAFF) as tx:  # another connection, committed now
            tx.patients.update(pid, PatientUpdate(version=1, patient_notes="editada"))
            tx.commit()

    report = svc.rotate(box, batch_size=3, on_selected=edit_between_read_and_write)

    (pid,) = target
    clinic = world.patients[pid]
    with box.uow(clinic, STAFF) as tx:
        got = tx.patients.get(pid)
    assert got.patient_notes == "editada"  # not overwritten by the rotation
    assert got.version == 2  # the staff edit's bump only
    assert got.internal_notes is not None  # other columns of that row were rotated
    notes = next(c for c in report.columns if c.column == "patient_notes_encrypted")
    assert notes.skipped == 1
    assert report.rotated == TOTAL - 1
    status = svc.key_status(box)
    if editor_ring == "old":  # a process not restarted yet still writes k1
        assert status.by_key == {"k1": 1, "k2": TOTAL - 1}
        assert svc.rotate(box).rotated == 1
    assert svc.key_status(box).by_key == {"k1": 0, "k2": TOTAL}


def test_the_write_guard_skips_a_changed_ciphertext(world: World) -> None:
    """The guard itself: a batch whose read value changed is not written."""
    box = world.box(world.ring2)
    pid, clinic = next(iter(world.patients.items()))
    cols = ["cpf_encrypted"]
    with box.service_uow(ADMIN) as tx:  # never committed: rolled back at the end
        conn = tx.connection
        rows = conn.execute(text(
            "SELECT clinic_id, id, cpf_encrypted FROM patients WHERE id = :id"), {"id": pid}
        ).all()
        batch = svc._reencrypt(box.cipher, "patients", cols, rows, key_header("k2"))
        conn.execute(text("UPDATE patients SET cpf_encrypted = cns_encrypted WHERE id = :id"),
                     {"id": pid})
        tally = {"cpf_encrypted": svc.ColumnRotation("patients", "cpf_encrypted")}
        written = SqlKeyBatch(conn).write_rotation("patients", cols, batch.refs, batch.old,
                                                   batch.new)
        svc._tally(written, cols, batch, tally)
        assert (tally["cpf_encrypted"].rotated, tally["cpf_encrypted"].skipped) == (0, 1)
        current = conn.execute(text("SELECT cpf_encrypted = cns_encrypted FROM patients "
                                    "WHERE id = :id"), {"id": pid}).scalar()
        assert current is True
    assert clinic


def test_values_under_an_unknown_key_stop_rotation_before_any_change(world: World) -> None:
    box = world.box(world.k2_only)
    with pytest.raises(svc.KeyRotationError) as err:
        svc.rotate(box)
    message = str(err.value)
    assert "patients.cpf_encrypted (key id k1)" in message
    assert "nothing was changed" in message
    assert svc.key_status(world.box(world.ring2)).by_key == {"k1": TOTAL, "k2": 0}


def test_a_value_that_does_not_decrypt_stops_rotation_with_a_clear_message(world: World) -> None:
    box = world.box(world.ring2)
    ids = list(world.patients)
    world.raw(box, "UPDATE patients SET patient_notes_encrypted = (SELECT "
                   "patient_notes_encrypted FROM patients WHERE id = :src) WHERE id = :dst "
                   "RETURNING id", src=ids[0], dst=ids[1])
    with pytest.raises(svc.KeyRotationError) as err:
        svc.rotate(box, batch_size=100)
    message = str(err.value)
    assert "patients.patient_notes_encrypted" in message
    assert "key id k1" in message
    assert "authentication failed" in message
    assert str(ids[1]) in message
    assert SECRET_NOTE not in message
    # the failing batch (all patients) wrote nothing, and rotation stopped there
    assert svc.key_status(box).by_key == {"k1": TOTAL, "k2": 0}


def test_rotate_refuses_bad_arguments(world: World) -> None:
    box = world.box(world.ring2)
    with pytest.raises(ValueError, match="batch size"):
        svc.rotate(box, batch_size=0)
    with pytest.raises(ValueError, match="max_batches"):
        svc.rotate(box, max_batches=0)


# --------------------------------------------------------------------------- blind index


def _new_blind(ring: KeyRing, key: bytes) -> KeyRing:
    return KeyRing(keys=ring.keys, active_id=ring.active_id, blind_index_key=key)


def _find(box: Container, clinic: uuid.UUID, number: str) -> uuid.UUID | None:
    with box.uow(clinic, STAFF) as tx:
        found = tx.patients.find_by_cpf(values.Cpf.parse(number))
    return None if found is None else found.id


def test_reindex_rewrites_blind_indexes_with_the_new_key(world: World) -> None:
    old_box = world.box(world.ring1)
    new_key = os.urandom(32)
    new_box = world.box(_new_blind(world.ring1, new_key))
    pid, clinic = next(iter(world.patients.items()))
    number = old_box.uow(clinic, STAFF)
    with number as tx:
        plain_cpf = tx.patients.get(pid).cpf
        plain_cns = tx.patients.get(pid).cns
    assert plain_cpf is not None
    assert plain_cns is not None
    assert _find(old_box, clinic, plain_cpf) == pid
    assert _find(new_box, clinic, plain_cpf) is None
    versions = dict(world.raw(old_box, "SELECT id, version FROM patients"))
    seen: list[str] = []

    report = svc.reindex_blind(old_box, new_key, batch_size=3,
                               progress=lambda label, _n: seen.append(label))

    assert report.complete
    assert report.updated == len(world.patients)
    assert (report.skipped, report.orphaned, report.conflicts) == (0, 0, [])
    assert report.passes == 2  # the second pass found nothing left
    assert {"patients (pass 1)", "patients (pass 2)"} <= set(seen)
    assert _find(new_box, clinic, plain_cpf) == pid
    assert _find(old_box, clinic, plain_cpf) is None
    with new_box.uow(clinic, STAFF) as tx:
        found = tx.patients.find_by_cns(values.Cns.parse(plain_cns))
    assert found is not None
    assert found.id == pid
    assert dict(world.raw(old_box, "SELECT id, version FROM patients")) == versions
    events = world.raw(old_box, "SELECT details FROM audit_events WHERE action = "
                                "'KEY_ROTATION' AND resource_id = 'patients.blind_index'")
    assert len(events) == 1
    assert events[0].details["values"] == len(world.patients)
    # idempotent: running again changes nothing
    assert svc.reindex_blind(new_box, new_key).updated == 0


def test_reindex_reports_uniqueness_conflicts(world: World) -> None:
    """Two patients of one clinic with one CPF, indexed with different keys (a process with
    the old key inserted during re-indexing): the new index collides and is reported."""
    stale = world.box(_new_blind(world.ring1, os.urandom(32)))
    pid, clinic = next(iter(world.patients.items()))
    with world.box(world.ring1).uow(clinic, STAFF) as tx:
        number = tx.patients.get(pid).cpf
    assert number is not None
    dup = patients.register_patient(stale.uow(clinic, STAFF),
                                    PatientCreate(full_name="Duplicado", cpf=number))
    new_key = os.urandom(32)

    report = svc.reindex_blind(world.box(world.ring1), new_key, batch_size=4)

    assert len(report.conflicts) == 1
    conflict = report.conflicts[0]
    assert conflict.kind == "cpf"
    assert conflict.clinic_id == clinic
    assert {conflict.patient_id, conflict.other_patient_id} == {pid, dup.id}
    assert report.updated == len(world.patients)  # everything else was re-indexed
    assert number not in json.dumps(report.as_dict())


# --------------------------------------------------------------------------- key file upkeep


def _doc(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _ring(path: Path) -> KeyRing:
    return load_keyring(make_settings("postgresql://unused/x", key_file=path))


def test_next_key_id() -> None:
    assert next_key_id([]) == "k1"
    assert next_key_id(["k1"]) == "k2"
    assert next_key_id(["k1", "k9", "prod-2024"]) == "k10"
    assert next_key_id(["prod"]) == "k1"


def test_add_activate_remove_keep_the_file_valid_and_private(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    doc = _doc(path)
    doc["comment"] = "kept"
    path.write_text(json.dumps(doc))
    first = _ring(path)

    assert add_key_to_file(path) == "k2"
    ring = _ring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ring.active_id == "k2"
    assert ring.keys["k1"] == first.keys["k1"]
    assert ring.blind_index_key == first.blind_index_key
    assert _doc(path)["comment"] == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temp file left

    assert add_key_to_file(path, activate=False) == "k3"
    assert _ring(path).active_id == "k2"
    activate_key_in_file(path, "k3")
    assert _ring(path).active_id == "k3"
    with pytest.raises(KeyConfigError, match="not in key file"):
        activate_key_in_file(path, "k7")
    with pytest.raises(KeyConfigError, match="active key"):
        remove_key_from_file(path, "k3")
    remove_key_from_file(path, "k1")
    assert sorted(_ring(path).keys) == ["k2", "k3"]


def test_key_file_changes_follow_a_symlink_and_keep_a_stricter_mode(tmp_path: Path) -> None:
    real = tmp_path / "secret" / "keys.json"
    generate_key_file(real)
    real.chmod(0o400)
    link = tmp_path / "keys.json"
    link.symlink_to(real)
    add_key_to_file(link)
    assert link.is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o400
    assert _ring(link).active_id == "k2"


def test_a_key_file_open_to_others_is_refused_before_any_change(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    path.chmod(0o644)
    before = path.read_bytes()
    with pytest.raises(KeyConfigError, match="chmod 600"):
        add_key_to_file(path)
    assert path.read_bytes() == before


def test_pending_blind_key_is_stored_first_then_promoted(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    old = _ring(path).blind_index_key
    key = pending_blind_index_key(path)
    assert pending_blind_index_key(path) == key  # resumes with the same key
    assert _ring(path).blind_index_key == old  # readers still use the old one
    with pytest.raises(KeyConfigError, match="no matching"):
        promote_blind_index_key(path, os.urandom(32), retired_at="2026-01-01T00:00:00Z")
    promote_blind_index_key(path, key, retired_at="2026-01-01T00:00:00Z")
    assert _ring(path).blind_index_key == key
    doc = _doc(path)
    assert "next_blind_index_key" not in doc
    assert doc["retired_blind_index_keys"] == [
        {"key": base64.b64encode(old).decode(), "retired_at": "2026-01-01T00:00:00Z"}
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
