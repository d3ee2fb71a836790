"""Erased stays erased: erasure advances the version, a stale or current correction of an
anonymized, blocked or deleted patient is refused by the service, and the database refuses
it too, to anyone running SQL as the application role (or as the service role)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import (
    NotFound,
    PatientDeleted,
    PatientErased,
    StaleVersion,
    ValidationFailed,
)
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate, PatientUpdate
from neonpro.domain.vocabulary import DataSubjectRequestKind
from neonpro.services import clinics, erasure, lgpd_requests, patients
from tests.valid import cpf

DPO = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e4"), "dpo")
ADMIN = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e5"), "admin")
PERSONAL = {"full_name": "Reaparecida Nome Real", "email": "reaparecida@exemplo.test",
            "phone_primary": "(11) 98765-1234"}


@pytest.fixture
def clinic(container: Container) -> uuid.UUID:
    return clinics.create_clinic(container.service_uow(DPO), ClinicCreate(name="Apagados")).id


def _register(box: Container, clinic: uuid.UUID, n: int, **extra: Any) -> uuid.UUID:
    return patients.register_patient(box.uow(clinic, ADMIN), PatientCreate(
        full_name=f"Paciente Apagavel {n}", cpf=cpf(8800 + n), **extra)).id


def _plain(box: Container) -> str:
    return make_url(box.database.owner_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


@contextmanager
def _as(box: Container, role: str, clinic: uuid.UUID) -> Iterator[psycopg.Connection[Any]]:
    """A raw connection acting as ``role`` in ``clinic``, as someone running SQL would."""
    with psycopg.connect(_plain(box)) as conn:
        # the application's own first statement: the role, then the bound context
        conn.execute("SELECT set_config('role', %s, true)", (role,))
        conn.execute("SELECT neonpro_bind_context(%s, %s, 'admin', '', '', '', '')",
                     (str(clinic), str(ADMIN.id)))
        yield conn


def _row(box: Container, patient: uuid.UUID) -> tuple[Any, ...]:
    with psycopg.connect(_plain(box), autocommit=True) as conn:  # superuser: past RLS
        row = conn.execute("SELECT version, full_name, email, phone_primary, anonymized_at, "
                           "blocked_at, deleted_at FROM patients WHERE id = %s",
                           (patient,)).fetchone()
    assert row is not None
    return tuple(row)


def test_erasure_advances_the_version_and_a_stale_correction_is_refused(
        container: Container, clinic: uuid.UUID) -> None:
    gone = _register(container, clinic, 1, email="antes@exemplo.test")
    read = patients.get_patient(container.uow(clinic, ADMIN), gone)
    assert read.version == 1
    assert erasure.erase_patient(container.admin_uow(clinic, DPO), gone).outcome == "anonymized"
    after = _row(container, gone)
    assert after[0] == 2  # the erasure advanced the version
    # the stale correction of the issue (version 1, with a name, an e-mail and a phone)
    with pytest.raises(PatientErased):
        patients.update_patient(container.uow(clinic, ADMIN), gone,
                                PatientUpdate(version=1, **PERSONAL))
    # and one with the current version too
    with pytest.raises(PatientErased):
        patients.update_patient(container.uow(clinic, ADMIN), gone,
                                PatientUpdate(version=2, **PERSONAL))
    with pytest.raises(PatientErased):
        patients.delete_patient(container.uow(clinic, ADMIN), gone, 2)
    assert _row(container, gone) == after


def test_blocked_and_deleted_patients_refuse_corrections(
        container: Container, clinic: uuid.UUID) -> None:
    held = _register(container, clinic, 2, blood_type="O+")  # a clinical record: blocked
    deleted = _register(container, clinic, 3)
    assert erasure.erase_patient(container.admin_uow(clinic, DPO), held).outcome == "blocked"
    assert _row(container, held)[0] == 2
    patients.delete_patient(container.uow(clinic, ADMIN), deleted, 1)
    with pytest.raises(PatientErased):  # hidden from the application role, known erased
        patients.update_patient(container.uow(clinic, ADMIN), held,
                                PatientUpdate(version=2, **PERSONAL))
    with pytest.raises(PatientDeleted):
        patients.update_patient(container.uow(clinic, ADMIN), deleted,
                                PatientUpdate(version=2, **PERSONAL))
    # a live patient still gets the ordinary answers
    alive = _register(container, clinic, 4)
    with pytest.raises(StaleVersion):
        patients.update_patient(container.uow(clinic, ADMIN), alive,
                                PatientUpdate(version=7, full_name="Outro Nome"))
    with pytest.raises(NotFound):
        patients.update_patient(container.uow(clinic, ADMIN), uuid.uuid4(),
                                PatientUpdate(version=1, full_name="Outro Nome"))


@pytest.mark.parametrize("role", ["neonpro_app", "neonpro_service"])
def test_the_database_refuses_personal_data_back_into_an_erased_patient(
        container: Container, clinic: uuid.UUID, role: str) -> None:
    gone = _register(container, clinic, 10 if role == "neonpro_app" else 20)
    deleted = _register(container, clinic, 11 if role == "neonpro_app" else 21)
    erasure.erase_patient(container.admin_uow(clinic, DPO), gone)
    patients.delete_patient(container.uow(clinic, ADMIN), deleted, 1)
    before = {p: _row(container, p) for p in (gone, deleted)}
    personal = ("UPDATE patients SET full_name = %s, email = %s, phone_primary = %s "
                "WHERE id = %s", (PERSONAL["full_name"], PERSONAL["email"], "11987651234"))
    born = ("UPDATE patients SET birth_date = DATE '1970-05-06' WHERE id = %s", ())
    attempts = {
        # an anonymized CPF is gone for good: no ciphertext may come back (a deleted
        # patient's may be re-encrypted by a key rotation: a value replaced by a value)
        gone: [personal, born, ("UPDATE patients SET anonymized_at = NULL WHERE id = %s", ()),
               ("UPDATE patients SET cpf_encrypted = '\\x00ff'::bytea WHERE id = %s", ())],
        deleted: [personal, born, ("UPDATE patients SET deleted_at = NULL WHERE id = %s", ())],
    }
    for patient, tried in attempts.items():
        for sql, values in tried:
            with _as(container, role, clinic) as conn, pytest.raises(
                    psycopg.errors.ObjectNotInPrerequisiteState) as refused:
                conn.execute(sql, (*values, patient))
            assert refused.value.diag.constraint_name == "patients_erased_guard"
    assert {p: _row(container, p) for p in (gone, deleted)} == before
    # bookkeeping that is no personal data still goes through (the consent summary, flags)
    with _as(container, role, clinic) as conn:
        conn.execute("UPDATE patients SET is_active = false, no_show_risk_score = 5 "
                     "WHERE id = %s", (gone,))
        conn.commit()


def test_a_blocked_record_is_out_of_reach_of_the_application_role(
        container: Container, clinic: uuid.UUID) -> None:
    held = _register(container, clinic, 30, blood_type="A+")
    erasure.erase_patient(container.admin_uow(clinic, DPO), held)
    before = _row(container, held)
    with _as(container, "neonpro_app", clinic) as conn:
        changed = conn.execute("UPDATE patients SET full_name = %s WHERE id = %s",
                               (PERSONAL["full_name"], held)).rowcount
        conn.commit()
    assert changed == 0
    # the service role sees it, and the guard refuses it there (unblocking included)
    for sql in ("UPDATE patients SET full_name = 'Nome Real De Volta' WHERE id = %s",
                "UPDATE patients SET blocked_at = NULL WHERE id = %s"):
        with _as(container, "neonpro_service", clinic) as conn, pytest.raises(
                psycopg.errors.ObjectNotInPrerequisiteState):
            conn.execute(sql, (held,))
    assert _row(container, held) == before


def test_erasure_itself_still_works_on_erased_rows(
        container: Container, clinic: uuid.UUID) -> None:
    """Blocked then anonymized when its hold runs out; erased twice; deleted then erased."""
    held = _register(container, clinic, 40, blood_type="B+")
    assert erasure.erase_patient(container.admin_uow(clinic, DPO), held).outcome == "blocked"
    uow = container.admin_uow(clinic, DPO)
    with uow:
        assert erasure.erase_in(uow, held, hold_expired=True).outcome == "anonymized"
        uow.commit()
    assert erasure.erase_patient(container.admin_uow(clinic, DPO), held).outcome == "anonymized"
    deleted = _register(container, clinic, 41)
    patients.delete_patient(container.uow(clinic, ADMIN), deleted, 1)
    assert erasure.erase_patient(container.admin_uow(clinic, DPO),
                                 deleted).outcome == "anonymized"
    row = _row(container, held)
    assert row[1] == "Paciente anonimizado"
    assert row[0] == 4  # block, anonymize, anonymize again: one version each


def test_an_erasure_names_only_a_request_of_that_patient_in_that_clinic(
        container: Container, clinic: uuid.UUID) -> None:
    """The ledger row is forever: another clinic's request, another patient's, or an id
    that is no request at all, is refused before anything is erased."""
    other = clinics.create_clinic(container.service_uow(DPO), ClinicCreate(name="Alheia")).id
    theirs = patients.register_patient(container.uow(other, ADMIN), PatientCreate(
        full_name="Paciente Alheio", cpf=cpf(8890))).id
    ours, neighbour = _register(container, clinic, 50), _register(container, clinic, 51)

    def opened(where: uuid.UUID, patient: uuid.UUID) -> uuid.UUID:
        return lgpd_requests.open_request(container.uow(where, DPO), lgpd_requests.RequestOpen(
            patient_id=patient, kind=DataSubjectRequestKind.DELETION)).id

    for grounds in (opened(other, theirs), opened(clinic, neighbour), uuid.uuid4()):
        with pytest.raises(ValidationFailed):
            erasure.erase_patient(container.admin_uow(clinic, DPO), ours, grounds)
    assert _row(container, ours)[4] is None  # nothing was erased
    done = erasure.erase_patient(container.admin_uow(clinic, DPO), ours, opened(clinic, ours))
    assert done.outcome == "anonymized"
