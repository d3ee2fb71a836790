"""The access/portability export: one patient in every table that holds patient data, and
nothing missed (ids per table from SQL against ids in the export), JSON and FHIR R4."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Table, insert, text

from neonpro.adapters.db.models import Disclosure, ErasureLedgerEntry
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import InvalidTransition, NotFound, ValidationFailed
from neonpro.domain.schemas.appointment import AppointmentCreate, Cancel
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import (
    AppointmentStatus,
    CancellationReason,
    CollectionMethod,
    ConsentPurpose,
    DataSubjectRequestKind,
)
from neonpro.queries import export as export_queries
from neonpro.services import clinics, consents, patients
from neonpro.services import lgpd_requests as lgpd
from neonpro.services.lgpd_requests import ExportFormat, RequestFulfil, RequestOpen
from tests.valid import cns, cpf

ADMIN = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000f1"), "admin")
DPO = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000f2"), "dpo")
OPERATOR = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000f3"), "system")
TERMS = hashlib.sha256(b"termos de consentimento").hexdigest()
T0 = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
PATIENT_TABLES = ("appointments", "consent_records", "disclosures", "data_subject_requests",
                  "erasure_ledger")
CPF_SYSTEM = "http://rnds.saude.gov.br/fhir/r4/NamingSystem/cpf"
CNS_SYSTEM = "http://rnds.saude.gov.br/fhir/r4/NamingSystem/cns"


@dataclass
class Seeded:
    clinic: uuid.UUID
    other_clinic: uuid.UUID
    patient: uuid.UUID
    neighbour: uuid.UUID  # another patient of the same clinic: must not leak in
    professionals: set[uuid.UUID]
    request: uuid.UUID


def _grant(container: Container, clinic: uuid.UUID, patient: uuid.UUID,
           purpose: ConsentPurpose, **kw: Any) -> uuid.UUID:
    return consents.grant_consent(container.uow(clinic, ADMIN), ConsentCreate(
        patient_id=patient, purpose=purpose, terms_version="v2", terms_hash=TERMS,
        collection_method=CollectionMethod.DIGITAL_SIGNATURE, **kw)).id


def _book(tx: Any, patient: uuid.UUID, professional: uuid.UUID, start: datetime,
          **kw: Any) -> uuid.UUID:
    booked: uuid.UUID = tx.appointments.add(AppointmentCreate(
        patient_id=patient, professional_id=professional, start_time=start,
        end_time=start + timedelta(minutes=30), **kw), time_zone="America/Sao_Paulo").id
    return booked


def seed_everything(container: Container, label: str = "Export") -> Seeded:
    """One patient with rows in every table that holds patient data, and a neighbour."""
    clinic = clinics.create_clinic(container.service_uow(OPERATOR),
                                   ClinicCreate(name=f"Clínica {label}")).id
    other = clinics.create_clinic(container.service_uow(OPERATOR),
                                  ClinicCreate(name=f"Outra {label}")).id
    with container.uow(clinic, ADMIN) as tx:
        ana = tx.professionals.add(ProfessionalCreate(
            full_name="Dra. Ana Exporta", council_type="CRM", council_state="SP",
            council_license="123456", specialization="Dermatologia")).id
        bia = tx.professionals.add(ProfessionalCreate(full_name="Dra. Bia Exporta")).id
        tx.professionals.add(ProfessionalCreate(full_name="Dr. Ninguém"))  # not involved
        tx.commit()
    n = uuid.uuid4().int % 10_000
    patient = patients.register_patient(container.uow(clinic, ADMIN), PatientCreate(
        full_name="Maria Exportada Silva", given_names=["Maria", "Exportada"],
        family_name="Silva", preferred_name="Mari", birth_date=date(1985, 4, 12),
        gender="female", marital_status="stable_union", cpf=cpf(8000 + n),
        cns=cns(8000 + n), rg="12345678", rg_issuing_organ="SSP/PE",
        phone_primary="81998765432", email="maria.exportada@example.com.br",
        address_line1="Rua da Aurora, 100", city="Recife", state="PE", postal_code="50050000",
        country="BR", blood_type="O+", allergies=["dipirona"], chronic_conditions=["asma"],
        current_medications=["salbutamol"], patient_notes="nota do paciente",
        internal_notes="nota interna", primary_professional_id=bia,
        emergency_contact_name="José Contato", emergency_contact_phone="81987654321",
        emergency_contact_relationship="cônjuge", insurance_provider="Unimed")).id
    neighbour = patients.register_patient(container.uow(clinic, ADMIN), PatientCreate(
        full_name="Vizinho Nada A Ver")).id
    with container.uow(clinic, ADMIN) as tx:
        _book(tx, patient, ana, T0, clinical_notes="queixa: acne", notes="trazer exames",
              chief_complaint="acne", tuss_code="10101012", tuss_procedure_name="Consulta")
        cancelled = _book(tx, patient, ana, T0 + timedelta(days=7),
                          internal_notes="remarcar")
        _book(tx, patient, bia, T0 + timedelta(days=14))
        _book(tx, neighbour, ana, T0 + timedelta(days=1))
        tx.commit()
    with container.uow(clinic, ADMIN) as tx:
        tx.appointments.cancel(cancelled, Cancel(version=1, reason=CancellationReason.PATIENT))
        tx.commit()
    _grant(container, clinic, patient, ConsentPurpose.MARKETING,
           expires_at=datetime.now(UTC) + timedelta(days=365), data_categories=["contact"])
    research = _grant(container, clinic, patient, ConsentPurpose.RESEARCH,
                      data_categories=["clinical"])
    consents.revoke_consent(container.uow(clinic, ADMIN), research)
    _grant(container, clinic, neighbour, ConsentPurpose.MARKETING)
    with container.uow(clinic, ADMIN) as tx:
        for who, recipient in ((patient, "Laboratório Exames"), (neighbour, "Outro Lab")):
            tx.connection.execute(insert(cast(Table, Disclosure.__table__)).values(
                clinic_id=clinic, id=uuid.uuid4(), patient_id=who, recipient_name=recipient,
                recipient_address="Av. Boa Viagem, 1", data_description="resultados de exames",
                data_categories=["clinical"], purpose="diagnóstico",
                legal_basis="health_protection", disclosed_by=ADMIN.id))
        tx.commit()
    # an erasure decision about the patient (say, marketing data deleted on request): the
    # erasure engine's (service role); the application only reads the ledger
    with container.admin_uow(clinic, ADMIN) as tx:
        tx.connection.execute(insert(cast(Table, ErasureLedgerEntry.__table__)).values(
            clinic_id=clinic, id=uuid.uuid4(), patient_id=patient, decided_by=ADMIN.id,
            outcome="deleted", decisions={"marketing": {
                "action": "delete", "legal_reference": "LGPD Art. 18 VI"}}))
        tx.commit()
    request = lgpd.open_request(container.uow(clinic, ADMIN), RequestOpen(
        patient_id=patient, kind=DataSubjectRequestKind.PORTABILITY)).id
    lgpd.open_request(container.uow(clinic, ADMIN), RequestOpen(
        patient_id=neighbour, kind=DataSubjectRequestKind.ACCESS))
    patients.get_patient(container.uow(clinic, DPO), patient)  # a VIEW audit event
    patients.get_patient(container.uow(clinic, DPO), neighbour)
    return Seeded(clinic, other, patient, neighbour, {ana, bia}, request)


@pytest.fixture(scope="module")
def seeded(container: Container) -> Seeded:
    return seed_everything(container)


def ids_in_sql(container: Container, s: Seeded) -> dict[str, set[str]]:
    """Ids of the patient's rows, per table, read directly with SQL."""
    out: dict[str, set[str]] = {}
    with container.uow(s.clinic, DPO) as tx:
        conn = tx.connection
        for table in PATIENT_TABLES:
            rows: Any = conn.execute(text(
                f"SELECT id FROM {table} WHERE clinic_id = :c AND patient_id = :p"),
                {"c": s.clinic, "p": s.patient}).scalars()
            out[table] = {str(r) for r in rows}
        patient_rows: Any = conn.execute(text(
            "SELECT id FROM patients WHERE clinic_id = :c AND id = :p"),
            {"c": s.clinic, "p": s.patient}).scalars()
        out["patients"] = {str(r) for r in patient_rows}
        event_rows: Any = conn.execute(text(
            "SELECT id FROM audit_events WHERE clinic_id = :c "
            "AND patient_ref = neonpro_patient_ref(CAST(:p AS uuid))"),
            {"c": s.clinic, "p": s.patient}).scalars()
        out["audit_events"] = {str(r) for r in event_rows}
    return out


def test_seed_touches_every_table_that_holds_patient_data(container: Container,
                                                          seeded: Seeded) -> None:
    ids = ids_in_sql(container, seeded)
    assert len(ids["appointments"]) == 3
    assert len(ids["consent_records"]) == 3  # marketing, research, research revocation
    assert len(ids["disclosures"]) == 1
    assert len(ids["data_subject_requests"]) == 1
    assert len(ids["erasure_ledger"]) == 1
    assert len(ids["audit_events"]) >= 10  # trigger CREATE/UPDATE/CONSENT_* and the VIEW
    # and every tenant table with a patient_id column is among those checked
    with container.uow(seeded.clinic, DPO) as tx:
        tables: set[str] = set(tx.connection.execute(text(
            "SELECT table_name FROM information_schema.columns WHERE column_name = "
            "'patient_id' AND table_schema = 'public'")).scalars())
    assert tables <= set(PATIENT_TABLES), tables - set(PATIENT_TABLES)


def test_json_export_misses_nothing(container: Container, seeded: Seeded) -> None:
    before = ids_in_sql(container, seeded)
    result = lgpd.export_patient(container.uow(seeded.clinic, DPO), seeded.patient,
                                 ExportFormat.JSON)
    doc = json.loads(result.content)
    assert doc["format"] == export_queries.FORMAT
    assert datetime.fromisoformat(doc["generated_at"]) == result.generated_at
    assert result.media_type == "application/json"
    assert result.sha256 == hashlib.sha256(result.content).hexdigest()
    exported = {
        "patients": {doc["patient"]["id"]},
        "appointments": {a["id"] for a in doc["appointments"]},
        "consent_records": {c["id"] for c in doc["consent_records"]},
        "disclosures": {d["id"] for d in doc["disclosures"]},
        "data_subject_requests": {r["id"] for r in doc["data_subject_requests"]},
        "erasure_ledger": {e["id"] for e in doc["erasure_ledger"]},
        "audit_events": {e["id"] for e in doc["audit_events"]},
    }
    assert exported == before
    assert doc["counts"] == {k: len(v) for k, v in exported.items()} | {
        "professionals": 2}
    # decrypted, complete values
    p = doc["patient"]
    assert p["full_name"] == "Maria Exportada Silva"
    assert len(p["cpf"]) == 11
    assert len(p["cns"]) == 15
    assert (p["rg"], p["patient_notes"], p["internal_notes"]) == (
        "12345678", "nota do paciente", "nota interna")
    notes = {a["clinical_notes"] for a in doc["appointments"]} | {
        a["internal_notes"] for a in doc["appointments"]}
    assert {"queixa: acne", "remarcar"} <= notes
    assert {c["status"] for c in doc["consent_records"]} == {"granted", "revoked"}
    assert doc["disclosures"][0]["recipient_name"] == "Laboratório Exames"
    assert {x["id"] for x in doc["professionals"]} == {str(x) for x in seeded.professionals}
    assert "phone" not in doc["professionals"][0]
    event = doc["audit_events"][0]
    assert {"action", "occurred_at", "actor_role", "resource_type", "resource_id",
            "details"} <= set(event)
    assert not {"hash", "prev_hash", "ip_address", "user_agent", "actor_id"} & set(event)
    assert {"VIEW", "CREATE", "CONSENT_GRANTED", "CONSENT_REVOKED"} <= {
        e["action"] for e in doc["audit_events"]}
    # nothing about the neighbour
    assert b"Vizinho" not in result.content
    assert b"Outro Lab" not in result.content
    assert str(seeded.neighbour).encode() not in result.content
    # the export itself is audited, medium risk, with its hash (not its content)
    with container.uow(seeded.clinic, DPO) as tx:
        row = tx.connection.execute(text(
            "SELECT risk_level, details, actor_role FROM audit_events WHERE clinic_id = :c "
            "AND action = 'EXPORT' AND resource_id = :p ORDER BY occurred_at DESC LIMIT 1"),
            {"c": seeded.clinic, "p": str(seeded.patient)}).one()
    assert row[0] == "medium"
    assert row[1]["sha256"] == result.sha256
    assert row[1]["format"] == "json"
    assert row[1]["records"]["appointments"] == 3
    assert row[2] == "dpo"
    after = ids_in_sql(container, seeded)
    assert len(after["audit_events"] - before["audit_events"]) == 1  # the EXPORT event


@pytest.fixture(scope="module")
def fhir_export(container: Container, seeded: Seeded) -> tuple[bytes, dict[str, list[Any]]]:
    result = lgpd.export_patient(container.uow(seeded.clinic, DPO), seeded.patient,
                                 ExportFormat.FHIR)
    assert result.media_type == "application/fhir+json"
    bundle = Bundle.model_validate_json(result.content)
    assert bundle.type == "collection"
    assert bundle.timestamp is not None
    resources: dict[str, list[Any]] = {}
    for entry in bundle.entry or []:
        resource: Any = entry.resource
        assert entry.fullUrl == f"urn:uuid:{resource.id}"
        resources.setdefault(resource.get_resource_type(), []).append(resource)
    return result.content, resources


def test_fhir_bundle_parses_back_and_holds_every_resource(
        container: Container, seeded: Seeded,
        fhir_export: tuple[bytes, dict[str, list[Any]]]) -> None:
    content, resources = fhir_export
    ids = ids_in_sql(container, seeded)
    assert len(resources["Patient"]) == 1
    assert {r.id for r in resources["Appointment"]} == ids["appointments"]
    assert {r.id for r in resources["Consent"]} == ids["consent_records"]
    assert {r.id for r in resources["Practitioner"]} == {str(x) for x in seeded.professionals}
    assert [len(resources[k]) for k in ("AllergyIntolerance", "Condition",
                                        "MedicationStatement", "Observation")] == [1, 1, 1, 1]

    patient = resources["Patient"][0]
    assert patient.id == str(seeded.patient)
    systems = {i.system: i.value for i in patient.identifier}
    assert len(systems[CPF_SYSTEM]) == 11
    assert len(systems[CNS_SYSTEM]) == 15
    assert patient.gender == "female"
    assert str(patient.birthDate) == "1985-04-12"
    assert patient.name[0].family == "Silva"
    assert patient.name[0].given == ["Maria", "Exportada"]
    assert {t.system for t in patient.telecom} == {"phone", "email"}
    assert patient.address[0].city == "Recife"
    assert patient.address[0].postalCode == "50050000"
    assert patient.maritalStatus.coding[0].code == "T"
    assert patient.contact[0].name.text == "José Contato"

    statuses = sorted(a.status for a in resources["Appointment"])
    assert statuses == ["booked", "booked", "cancelled"]
    first = next(a for a in resources["Appointment"] if a.reasonCode)
    assert "queixa: acne" in first.comment
    assert first.serviceType[0].coding[0].code == "10101012"
    cancelled = next(a for a in resources["Appointment"] if a.status == "cancelled")
    assert cancelled.cancelationReason.text == "patient"
    assert {p.actor.reference for a in resources["Appointment"] for p in a.participant} >= {
        f"urn:uuid:{seeded.patient}"}
    assert b"Vizinho" not in content


def test_fhir_bytes_are_what_the_models_serialize(
        fhir_export: tuple[bytes, dict[str, list[Any]]]) -> None:
    """The export writes the validated data itself (not through the models' slow
    serializer): parsed back by fhir.resources, it must serialize to the same JSON."""
    content, _ = fhir_export
    assert json.loads(Bundle.model_validate_json(content).model_dump_json()) == json.loads(content)


def test_fhir_consents_and_references(seeded: Seeded,
                                      fhir_export: tuple[bytes, dict[str, list[Any]]]) -> None:
    content, resources = fhir_export
    by_purpose: dict[str, list[Any]] = {}
    for c in resources["Consent"]:
        purpose = next(code.code for code in c.provision.purpose
                       if code.system.endswith("consent-purpose"))
        by_purpose.setdefault(purpose, []).append(c)
        assert c.scope.coding[0].system == "http://terminology.hl7.org/CodeSystem/consentscope"
        assert c.category[0].coding[0].code == "59284-0"
        assert c.patient.reference == f"urn:uuid:{seeded.patient}"
        assert c.policy
    assert [c.status for c in by_purpose["marketing"]] == ["active"]
    assert by_purpose["marketing"][0].scope.coding[0].code == "patient-privacy"
    # the research grant is superseded by its revocation: neither is in force
    assert sorted(c.status for c in by_purpose["research"]) == ["inactive", "inactive"]
    assert by_purpose["research"][0].scope.coding[0].code == "research"

    # every reference resolves inside the bundle
    raw = json.loads(content)
    full_urls = {e["fullUrl"] for e in raw["entry"]}
    references = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                references.add(node["reference"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(raw)
    assert references
    assert references <= full_urls


def test_fhir_status_mappings() -> None:
    appointments = {
        "scheduled": "booked", "confirmed": "booked", "in_progress": "arrived",
        "completed": "fulfilled", "cancelled": "cancelled", "no_show": "noshow",
        "rescheduled": "cancelled",
    }
    assert {k.value: v for k, v in export_queries.APPOINTMENT_STATUS.items()} == appointments
    assert set(export_queries.APPOINTMENT_STATUS) == set(AppointmentStatus)
    assert {k.value: v for k, v in export_queries.CONSENT_STATUS.items()} == {
        "granted": "active", "revoked": "inactive", "expired": "inactive",
        "pending": "proposed"}


def test_export_tied_to_a_request_stores_its_hash(container: Container) -> None:
    s = seed_everything(container, "Pedido")
    result = lgpd.export_patient(container.uow(s.clinic, DPO), s.patient, ExportFormat.FHIR,
                                 request_id=s.request)
    request = lgpd.get_request(container.uow(s.clinic, DPO), s.request)
    assert request.response_sha256 == hashlib.sha256(result.content).hexdigest()
    assert request.status == "in_progress"
    with container.uow(s.clinic, DPO) as tx:
        details: Any = tx.connection.execute(text(
            "SELECT details FROM audit_events WHERE clinic_id = :c AND action = 'EXPORT'"),
            {"c": s.clinic}).scalar_one()
    assert details["request_id"] == str(s.request)
    assert details["format"] == "fhir"
    # a second export (JSON this time) replaces the hash: the latest answer made
    again = lgpd.export_patient(container.uow(s.clinic, DPO), s.patient, ExportFormat.JSON,
                                request_id=s.request)
    assert json.loads(again.content)["request_id"] == str(s.request)
    lgpd.verify_identity(container.uow(s.clinic, DPO), s.request)
    done = lgpd.fulfil_request(container.uow(s.clinic, DPO), s.request, RequestFulfil())
    assert done.status == "fulfilled"
    assert done.response_sha256 == again.sha256
    with pytest.raises(InvalidTransition):  # a closed request takes no more answers
        lgpd.export_patient(container.uow(s.clinic, DPO), s.patient, request_id=s.request)


def test_export_refuses_mismatched_requests_and_leaves_no_trace(container: Container,
                                                                seeded: Seeded) -> None:
    def exports() -> int:
        with container.uow(seeded.clinic, DPO) as tx:
            return int(tx.connection.execute(text(
                "SELECT count(*) FROM audit_events WHERE clinic_id = :c AND action = 'EXPORT'"),
                {"c": seeded.clinic}).scalar_one())

    count = exports()
    deletion = lgpd.open_request(container.uow(seeded.clinic, ADMIN), RequestOpen(
        patient_id=seeded.patient, kind=DataSubjectRequestKind.DELETION)).id
    with pytest.raises(ValidationFailed, match="not answered by an export"):
        lgpd.export_patient(container.uow(seeded.clinic, DPO), seeded.patient,
                            request_id=deletion)
    with pytest.raises(ValidationFailed, match="another patient"):
        lgpd.export_patient(container.uow(seeded.clinic, DPO), seeded.neighbour,
                            request_id=seeded.request)
    with pytest.raises(NotFound):
        lgpd.export_patient(container.uow(seeded.clinic, DPO), seeded.patient,
                            request_id=uuid.uuid4())
    with pytest.raises(NotFound):  # the patient is not the other clinic's
        lgpd.export_patient(container.uow(seeded.other_clinic, DPO), seeded.patient)
    assert exports() == count
    untouched = lgpd.get_request(container.uow(seeded.clinic, DPO), seeded.request)
    assert untouched.response_sha256 is None
