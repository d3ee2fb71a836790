"""Erasure by law: anonymization leaves nothing behind; blocking hides; legal-hold reads."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from neonpro.adapters.db.models import Base
from neonpro.bootstrap import Container
from neonpro.domain import values
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Forbidden, NotBlocked, NotFound, ValidationFailed
from neonpro.domain.schemas.appointment import AppointmentCreate, Window
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate, PatientFilters
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose
from neonpro.services import catalog, clinics, consents, erasure, patients, scheduling
from tests.sessions import replica_role, service_session, tenant_session
from tests.valid import cns, cpf

SP = ZoneInfo("America/Sao_Paulo")
DPO = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e1"), "dpo", ip_address="192.0.2.50")


@pytest.fixture
def clinic(container: Container) -> uuid.UUID:
    return clinics.create_clinic(container.service_uow(DPO), ClinicCreate(name="Erase")).id


def _person(n: int) -> dict[str, object]:
    return {
        "full_name": f"Joaquinélia Zebedeu Quintanilha {n}", "given_names": ["Joaquinélia", "Zebedeu"],
        "family_name": f"Quintanilha{n}", "preferred_name": f"Quinta{n}",
        "birth_date": date(1983, 7, 19), "cpf": cpf(7000 + n), "cns": cns(7000 + n),
        "rg": f"98.765.43{n}-X", "passport_number": f"YB99887{n}",
        "phone_primary": "(21) 97531-8642", "phone_secondary": "(21) 3555-1212",
        "email": f"joaquina.quintanilha{n}@exemplo-privado.com.br",
        "address_line1": f"Rua dos Inconfidentes {n}47", "address_line2": "apto 1203",
        "city": "Petrópolis", "state": "RJ", "postal_code": "25610-070",
        "emergency_contact_name": f"Anastácio Quintanilha {n}",
        "emergency_contact_phone": "(21) 98642-7531", "emergency_contact_cpf": cpf(8000 + n),
        "insurance_number": f"CARTEIRA-{n}-5566", "external_ids": {"legacy": f"LEG-{n}-991"},
    }


def _consent(container: Container, clinic: uuid.UUID, pid: uuid.UUID) -> None:
    consents.grant_consent(container.uow(clinic, DPO), ConsentCreate(
        patient_id=pid, purpose=ConsentPurpose.MARKETING, terms_version="m1",
        terms_hash="c" * 64, collection_method=CollectionMethod.ONLINE_FORM,
        evidence={"ip": "198.51.100.77", "user_agent": "Navegador-Unico/9.9"}))


def _dump(container: Container) -> str:
    """Every row of every table, as JSON text, read with the service role."""
    parts = []
    with service_session(container.database, DPO.id) as s:
        for table in Base.metadata.sorted_tables:
            if table.name in ("audit_ref_keys",):
                continue
            rows = s.execute(text(f"SELECT row_to_json(t)::text FROM {table.name} t")).scalars()
            parts.extend(rows)
    return "\n".join(parts)


def test_anonymization_leaves_no_trace_of_the_old_values(container: Container,
                                                         clinic: uuid.UUID) -> None:
    data = _person(1)
    created = patients.register_patient(container.uow(clinic, DPO), PatientCreate(**data))  # type: ignore[arg-type]
    _consent(container, clinic, created.id)
    prof = catalog.add_professional(container.uow(clinic, DPO), ProfessionalCreate(
        full_name="Dra. Booking", can_work_weekends=True, appointment_buffer_minutes=0)).id
    start = datetime.combine(date.today() + timedelta(days=5), time(11), tzinfo=SP)  # noqa: DTZ011
    scheduling.book_appointment(container.uow(clinic, DPO), AppointmentCreate(
        patient_id=created.id, professional_id=prof, start_time=start,
        end_time=start + timedelta(minutes=30), notes="Trazer exames da Unimed Serrana"))
    with service_session(container.database, DPO.id) as s:
        secret = s.execute(text("SELECT encode(cpf_encrypted, 'hex'), "
                                "encode(cpf_blind_index, 'hex') FROM patients WHERE id = :p"),
                           {"p": created.id}).one()
    plan = erasure.plan_erasure(container.uow(clinic, DPO), created.id)
    assert {d.action.value for d in plan} >= {"anonymize", "delete"}
    assert "block" not in {d.action.value for d in plan}
    done = erasure.erase_patient(container.admin_uow(clinic, DPO), created.id)
    assert done.outcome == "anonymized"
    dump = _dump(container)
    originals = [
        str(data["full_name"]), "Joaquinélia", "Zebedeu", "Quintanilha1", "Quinta1", "1983-07-19",
        str(data["cpf"]), values.Cpf.parse(str(data["cpf"])).masked(), str(data["cns"]),
        "98.765.431-X", "YB998871", "21975318642", "2135551212", str(data["email"]),
        "Inconfidentes", "apto 1203", "Petrópolis", "25610070", "Anastácio",
        "21986427531", str(data["emergency_contact_cpf"]), "CARTEIRA-1-5566", "LEG-1-991",
        "198.51.100.77", "Navegador-Unico", "Unimed Serrana", secret[0], secret[1],
    ]
    leaked = [value for value in originals if value and value in dump]
    assert leaked == []
    with container.uow(clinic, DPO) as tx:
        anonymous = tx.patients.get(created.id)
        assert tx.patients.find_by_cpf(values.Cpf.parse(str(data["cpf"]))) is None
    assert anonymous.full_name == "Paciente anonimizado"
    assert anonymous.birth_date == date(1983, 1, 1)
    assert anonymous.anonymized_at is not None
    assert anonymous.state == "RJ"


def test_a_clinical_record_is_blocked_not_deleted(container: Container, clinic: uuid.UUID) -> None:
    created = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
        **_person(2), patient_notes="asma"))  # type: ignore[arg-type]
    prof = catalog.add_professional(container.uow(clinic, DPO), ProfessionalCreate(
        full_name="Dra. Hold", can_work_weekends=True, appointment_buffer_minutes=0)).id
    start = datetime.combine(date.today() + timedelta(days=6), time(11), tzinfo=SP)  # noqa: DTZ011
    appt = scheduling.book_appointment(container.uow(clinic, DPO), AppointmentCreate(
        patient_id=created.id, professional_id=prof, start_time=start,
        end_time=start + timedelta(minutes=30), clinical_notes="crise asmática"))
    done = erasure.erase_patient(container.admin_uow(clinic, DPO), created.id)
    assert done.outcome == "blocked"
    decided = {d.category.value: d.action.value for d in done.decisions}
    assert decided["clinical"] == "block"
    assert decided["contact"] == "delete"
    with pytest.raises(NotFound):
        patients.get_patient(container.uow(clinic, DPO), created.id)
    listed = patients.search_patients(container.uow(clinic, DPO),
                                      PatientFilters(name="quintanilha", is_active=None))
    assert created.id not in [p.id for p in listed.items]
    with container.uow(clinic, DPO) as tx:
        with pytest.raises(NotFound):
            tx.appointments.get(appt.id)
        window = Window(start - timedelta(hours=1), start + timedelta(hours=2))
        assert appt.id not in [e.id for e in tx.appointments.calendar(window)]
    held = erasure.legal_hold_read(container, container.cipher, clinic, created.id, DPO, "court order 123/2026")
    assert held.patient.patient_notes == "asma"
    assert held.patient.phone_primary is None  # contact data deleted even under the hold
    assert [a.clinical_notes for a in held.appointments] == ["crise asmática"]
    with service_session(container.database, DPO.id) as s:
        events = dict(s.execute(text(
            "SELECT action, count(*) FROM audit_events WHERE clinic_id = :c AND "
            "action IN ('BLOCK', 'LEGAL_HOLD_READ') GROUP BY action"), {"c": clinic}).all())
        ledger = s.execute(text("SELECT outcome, decisions FROM erasure_ledger "
                                "WHERE patient_id = :p"), {"p": created.id}).one()
    assert events["LEGAL_HOLD_READ"] == 1
    assert events["BLOCK"] >= 3
    assert ledger.outcome == "blocked"
    assert "Lei 13.787/2018" in ledger.decisions["clinical"]["legal_reference"]


def test_the_application_role_cannot_unblock_or_read_blocked_rows(
    container: Container, clinic: uuid.UUID
) -> None:
    created = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
        full_name="Bloqueada", patient_notes="x"))
    erasure.erase_patient(container.admin_uow(clinic, DPO), created.id)
    with tenant_session(container.database, clinic, DPO.id, "dpo") as s:
        assert s.execute(text("SELECT count(*) FROM patients WHERE id = :p"),
                         {"p": created.id}).scalar_one() == 0
        changed = s.execute(text("UPDATE patients SET blocked_at = NULL WHERE id = :p"),
                            {"p": created.id}).rowcount
    assert changed == 0


@pytest.mark.parametrize("role", ["receptionist", "professional", "system"])
def test_a_legal_hold_read_is_refused_to_other_roles_by_the_service(
    container: Container, clinic: uuid.UUID, role: str
) -> None:
    """Issue 13: the service itself refused nobody (a receptionist read a blocked record);
    now only the DPO and the admin may, and the refusal is a security event."""
    held = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
        full_name="Retida Em Juizo", patient_notes="x")).id
    erasure.erase_patient(container.admin_uow(clinic, DPO), held)
    intruder = Actor(uuid.uuid4(), role)
    with pytest.raises(Forbidden):
        erasure.legal_hold_read(container, container.cipher, clinic, held, intruder, "court order 123/2026")
    with service_session(container.database, DPO.id) as s:
        events = s.execute(text(
            "SELECT action, status FROM audit_events WHERE clinic_id = :c AND actor_id = :a"),
            {"c": clinic, "a": intruder.id}).all()
    assert [(e.action, e.status) for e in events] == [("PERMISSION_DENIED", "blocked")]


def test_a_legal_hold_read_needs_a_justification_and_a_blocked_record(
    container: Container, clinic: uuid.UUID
) -> None:
    held = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
        full_name="Retida Em Juizo", patient_notes="x")).id
    plain = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
        full_name="Nao Retida")).id
    erasure.erase_patient(container.admin_uow(clinic, DPO), held)
    for reason in (None, "", "  \n ", "short", "x" * 1001):
        with pytest.raises(ValidationFailed, match="justification"):
            erasure.legal_hold_read(container, container.cipher, clinic, held, DPO, reason)
    with pytest.raises(NotBlocked):
        erasure.legal_hold_read(container, container.cipher, clinic, plain, DPO, "court order 123/2026")
    with pytest.raises(NotFound):
        erasure.legal_hold_read(container, container.cipher, clinic, uuid.uuid4(), DPO, "court order 123/2026")
    with service_session(container.database, DPO.id) as s:
        reads = s.execute(text(
            "SELECT count(*) FROM audit_events WHERE clinic_id = :c "
            "AND action = 'LEGAL_HOLD_READ'"), {"c": clinic}).scalar_one()
    assert reads == 0  # nothing was read, nothing recorded as read


def test_erasures_are_reapplied_after_a_restore(container: Container, clinic: uuid.UUID) -> None:
    gone = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
        full_name="Voltou do Backup", cpf=cpf(9911)))
    held = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
        full_name="Prontuario Restaurado", patient_notes="x"))
    erasure.erase_patient(container.admin_uow(clinic, DPO), gone.id)
    erasure.erase_patient(container.admin_uow(clinic, DPO), held.id)
    # a restore of an older backup brings the rows back as they were (pg_restore loads rows
    # before the triggers exist: no guard, no audit)
    with container.database.engine().begin() as conn:
        replica_role(conn)
        conn.execute(text("UPDATE patients SET full_name = 'Voltou do Backup', "
                          "anonymized_at = NULL, is_active = true WHERE id = :p"), {"p": gone.id})
        conn.execute(text("UPDATE patients SET blocked_at = NULL WHERE id = :p"), {"p": held.id})
    assert erasure.reapply_erasures(container, DPO, clinic_id=clinic) == 2
    with container.uow(clinic, DPO) as tx:
        assert tx.patients.get(gone.id).full_name == "Paciente anonimizado"
        with pytest.raises(NotFound):
            tx.patients.get(held.id)
    assert erasure.reapply_erasures(container, DPO, clinic_id=clinic) == 0
