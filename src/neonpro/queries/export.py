"""Everything held about one patient, and its renderings: JSON and a FHIR R4 Bundle.

Read side of LGPD Art. 18 I (confirmation), II (access) and V (portability). Runs inside
an open tenant unit of work: row-level security limits every query to its clinic, the
patient's and appointments' encrypted fields are decrypted by their repositories.

What is collected (one patient, one clinic):

* ``patients``: the record, decrypted (a soft-deleted patient is not found);
* ``appointments``: every one, with clinical, internal and general notes;
* ``professionals``: those of the appointments and the primary professional (their
  professional identity only: name, council registration, specialty; not their contacts);
* ``consent_records``: the full ledger history, superseded rows included, and
  ``consent_state``: the state of each purpose (the latest decision wins,
  ``neonpro_consent_state``), the same the consent gate and confirmation read;
* ``disclosures``: the sharing log;
* ``data_subject_requests``: the patient's requests and their outcome;
* ``erasure_ledger``: erasure decisions about the patient (per category: action and legal
  reference), e.g. for an anonymized patient;
* ``audit_events``: events whose ``patient_ref`` is the patient's (action, time, actor
  role, resource, status, risk, details; never hashes, addresses or staff identities).

The JSON document holds all of it. The FHIR Bundle (type ``collection``) holds what FHIR
models: Patient, Practitioner, Appointment, Consent, plus AllergyIntolerance, Condition,
MedicationStatement and a blood-group Observation for the patient's clinical lists.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

import pydantic_core
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from sqlalchemy import Connection, text

from neonpro.domain.paging import MAX_PAGE_SIZE, PageRequest
from neonpro.domain.schemas.export import Holdings, PatientData
from neonpro.domain.vocabulary import (
    AppointmentStatus,
    ConsentPurpose,
    ConsentStatus,
    DataCategory,
)
from neonpro.queries.audit import column_categories

if TYPE_CHECKING:
    from fhir_core.fhirabstractmodel import FHIRAbstractModel

    from neonpro.adapters.db.uow import SqlUnitOfWork
    from neonpro.domain.schemas.appointment import AppointmentRead
    from neonpro.domain.schemas.consent import ConsentRead
    from neonpro.domain.schemas.patient import PatientRead

FORMAT = "neonpro.lgpd.export/v1"


class ExportFormat(StrEnum):
    JSON = "json"
    FHIR = "fhir"


FhirJson = dict[str, Any]  # a FHIR element as JSON-ready data
MEDIA_TYPES = {ExportFormat.JSON: "application/json", ExportFormat.FHIR: "application/fhir+json"}


# ------------------------------------------------------------------------ collection
PROFESSIONALS = text(
    "SELECT id, full_name, specialization, council_type, council_license, council_state "
    "FROM professionals WHERE clinic_id = :c AND id = ANY(:ids) ORDER BY full_name, id"
)
DISCLOSURES = text(
    "SELECT id, disclosed_at, recipient_name, recipient_address, data_description, "
    "data_categories, purpose, legal_basis, consent_record_id, created_at "
    "FROM disclosures WHERE clinic_id = :c AND patient_id = :p ORDER BY disclosed_at, id"
)
ERASURES = text(
    "SELECT id, request_id, decided_at, outcome, decisions FROM erasure_ledger "
    "WHERE clinic_id = :c AND patient_id = :p ORDER BY decided_at, id"
)
AUDIT_EVENTS = text(
    "SELECT id, occurred_at, action, actor_role, resource_type, resource_id, status, "
    "risk_level, details FROM audit_events "
    "WHERE clinic_id = :c AND patient_ref = neonpro_patient_ref(CAST(:p AS uuid)) "
    "ORDER BY occurred_at, id"
)


def _rows(conn: Connection, statement: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(statement, params)]  # noqa: SLF001


def appointments_of(uow: SqlUnitOfWork, patient_id: uuid.UUID) -> list[AppointmentRead]:
    """Every appointment of the patient, decrypted, oldest first (paged by the repository)."""
    out: list[AppointmentRead] = []
    offset = 0
    while True:
        page = uow.appointments.list_for_patient(
            patient_id, PageRequest(limit=MAX_PAGE_SIZE, offset=offset, with_total=False))
        out.extend(page.items)
        if len(page.items) < MAX_PAGE_SIZE:
            return out
        offset += MAX_PAGE_SIZE


def collect(uow: SqlUnitOfWork, patient_id: uuid.UUID) -> PatientData:
    """Read everything held about the patient (NotFound if the clinic has no such patient)."""
    patient = uow.patients.get(patient_id)
    clinic = patient.clinic_id
    conn = uow.connection
    params = {"c": clinic, "p": patient_id}
    data = PatientData(clinic, patient)
    data.appointments = appointments_of(uow, patient_id)
    involved = {a.professional_id for a in data.appointments}
    if patient.primary_professional_id is not None:
        involved.add(patient.primary_professional_id)
    if involved:
        data.professionals = _rows(conn, PROFESSIONALS, {"c": clinic, "ids": list(involved)})
    data.consents = uow.consents.history(patient_id)
    data.consent_states = uow.consents.states(patient_id)
    data.disclosures = _rows(conn, DISCLOSURES, params)
    data.requests = uow.subject_requests.for_patient(patient_id)
    data.erasures = _rows(conn, ERASURES, params)
    data.audit_events = _rows(conn, AUDIT_EVENTS, params)
    return data


# ------------------------------------------------------- what is held, in summary
MONEY = ("estimated_cost", "actual_cost", "copay_amount", "cancellation_fee")


def _patient_categories(patient: PatientRead) -> set[str]:
    """Categories of the patient's non-empty personal-data fields (per column metadata)."""
    out: set[str] = set()
    for column, category in column_categories().get("patients", {}).items():
        name = column.removesuffix("_encrypted")
        value = getattr(patient, name, None)
        if value not in (None, "", [], {}):
            out.add(category)
    return out


def holdings(conn: Connection, patient: PatientRead) -> Holdings:
    """What the clinic holds about ``patient``: counts per table, categories, since when."""
    params = {"c": patient.clinic_id, "p": patient.id}
    row = conn.execute(text(_holdings_sql()), params).one()._mapping  # noqa: SLF001
    counts = {"patients": 1, **{k: int(row[k]) for k in (
        "appointments", "consent_records", "disclosures", "data_subject_requests",
        "erasure_ledger", "audit_events")}}
    categories = _patient_categories(patient)
    categories.update(k.removeprefix("cat_") for k, v in row.items()
                      if k.startswith("cat_") and v)
    if counts["appointments"]:
        categories.add(DataCategory.CLINICAL.value)  # receiving care is itself health data
    if counts["consent_records"] or counts["disclosures"]:
        categories.add(DataCategory.CONSENT.value)
    if counts["audit_events"]:
        categories.add(DataCategory.AUDIT.value)
    firsts = [t for t in (patient.created_at, row["first_appointment"], row["first_consent"])
              if t is not None]
    order = list(DataCategory)
    return Holdings(counts, sorted(categories, key=lambda c: order.index(DataCategory(c))),
                    min(firsts) if firsts else None)


@cache
def _holdings_sql() -> str:
    """One statement: counts per table, and which appointment categories hold a value
    (from the models' ``pii()`` declarations, so a new personal column is counted)."""
    by_category: dict[str, list[str]] = {}
    for column, category in column_categories().get("appointments", {}).items():
        by_category.setdefault(category, []).append(column)
    by_category.setdefault(DataCategory.FINANCIAL.value, []).extend(MONEY)
    flags = ", ".join(
        f"coalesce(bool_or({' OR '.join(f'{c} IS NOT NULL' for c in sorted(cols))}), false)"
        f" AS cat_{cat}" for cat, cols in sorted(by_category.items())
    )
    patient_rows = "clinic_id = :c AND patient_id = :p"
    return (
        f"WITH a AS (SELECT count(*) AS appointments, min(created_at) AS first_appointment, "  # noqa: S608
        f"{flags} FROM appointments WHERE {patient_rows}) "
        f"SELECT a.*, "
        f"(SELECT count(*) FROM consent_records WHERE {patient_rows}) AS consent_records, "
        f"(SELECT min(created_at) FROM consent_records WHERE {patient_rows}) AS first_consent, "
        f"(SELECT count(*) FROM disclosures WHERE {patient_rows}) AS disclosures, "
        f"(SELECT count(*) FROM data_subject_requests WHERE {patient_rows}) "
        f"AS data_subject_requests, "
        f"(SELECT count(*) FROM erasure_ledger WHERE {patient_rows}) AS erasure_ledger, "
        f"(SELECT count(*) FROM audit_events WHERE clinic_id = :c "
        f"AND patient_ref = neonpro_patient_ref(CAST(:p AS uuid))) AS audit_events FROM a"
    )


# ------------------------------------------------------------------------------ JSON
def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise TypeError(type(value).__name__)


def to_json(data: PatientData, generated_at: datetime,
            request_id: uuid.UUID | None = None) -> bytes:
    """The complete export as UTF-8 JSON: a dict with ``format`` and ``generated_at``."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": generated_at.isoformat(),
        "clinic_id": data.clinic_id,
        "patient_id": data.patient.id,
        "request_id": request_id,
        "legal_reference": "LGPD Art. 18 I, II, V and VII; Art. 19",
        "counts": data.counts(),
        "patient": data.patient.model_dump(mode="json"),
        "appointments": [a.model_dump(mode="json") for a in data.appointments],
        "professionals": data.professionals,
        "consent_records": [c.model_dump(mode="json") for c in data.consents],
        "consent_state": [c.model_dump(mode="json") for c in data.consent_states],
        "disclosures": data.disclosures,
        "data_subject_requests": [r.model_dump(mode="json") for r in data.requests],
        "erasure_ledger": data.erasures,
        "audit_events": data.audit_events,
    }
    return json.dumps(doc, ensure_ascii=False, default=_plain).encode()


# ------------------------------------------------------------------------------ FHIR
CPF_SYSTEM = "http://rnds.saude.gov.br/fhir/r4/NamingSystem/cpf"
CNS_SYSTEM = "http://rnds.saude.gov.br/fhir/r4/NamingSystem/cns"
NEONPRO = "https://neonpro.dev/fhir"
LGPD_URI = "https://www.planalto.gov.br/ccivil_03/_ato2015-2018/2018/lei/l13709.htm"
HL7 = "http://terminology.hl7.org/CodeSystem"

APPOINTMENT_STATUS = {
    AppointmentStatus.SCHEDULED: "booked", AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.IN_PROGRESS: "arrived", AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.CANCELLED: "cancelled", AppointmentStatus.NO_SHOW: "noshow",
    AppointmentStatus.RESCHEDULED: "cancelled",
}
CONSENT_STATUS = {
    ConsentStatus.GRANTED: "active", ConsentStatus.REVOKED: "inactive",
    ConsentStatus.EXPIRED: "inactive", ConsentStatus.PENDING: "proposed",
}
# R4B Consent.scope (required): http://terminology.hl7.org/CodeSystem/consentscope
CONSENT_SCOPE = {
    ConsentPurpose.TREATMENT: ("treatment", "Treatment"),
    ConsentPurpose.TELEMEDICINE: ("treatment", "Treatment"),
    ConsentPurpose.RESEARCH: ("research", "Research"),
}
PRIVACY_SCOPE = ("patient-privacy", "Privacy Consent")
# provision.purpose: v3 PurposeOfUse where one fits, besides the clinic's own code
PURPOSE_OF_USE = {
    ConsentPurpose.TREATMENT: "TREAT", ConsentPurpose.TELEMEDICINE: "TREAT",
    ConsentPurpose.MARKETING: "HMARKT", ConsentPurpose.RESEARCH: "HRESCH",
    ConsentPurpose.INSURANCE_SHARING: "COVERAGE",
}
MARITAL_STATUS = {
    "single": "S", "married": "M", "stable_union": "T", "separated": "L", "divorced": "D",
    "widowed": "W",
}
NOTE_LABELS = (("notes", "Notes"), ("clinical_notes", "Clinical notes"),
               ("internal_notes", "Internal notes"))


def _ref(resource_type: str, resource_id: uuid.UUID) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource_id}", "type": resource_type}


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


def _valid(model: type[FHIRAbstractModel], values: dict[str, Any], *,
           resource: bool = True) -> FhirJson:
    """``values`` (JSON-ready but for dates and times) once ``model`` accepts them, with the
    ``resourceType`` of a resource first; raises the model's validation error otherwise."""
    model.model_validate(values)
    return {"resourceType": model.get_resource_type(), **values} if resource else values


def fhir_patient(p: PatientRead, practitioners: set[uuid.UUID]) -> FhirJson:
    identifiers: list[dict[str, Any]] = []
    if p.cpf:
        identifiers.append({"use": "official", "system": CPF_SYSTEM, "value": p.cpf})
    if p.cns:
        identifiers.append({"use": "official", "system": CNS_SYSTEM, "value": p.cns})
    identifiers.append({"use": "usual", "type": _concept(f"{HL7}/v2-0203", "MR"),
                        "system": f"{NEONPRO}/NamingSystem/clinic/{p.clinic_id}/mrn",
                        "value": p.medical_record_number})
    if p.rg:
        identifiers.append(_drop_empty({"type": {"text": "RG"}, "value": p.rg,
                                        "assigner": _drop_empty({"display": p.rg_issuing_organ})}))
    if p.passport_number:
        identifiers.append({"type": _concept(f"{HL7}/v2-0203", "PPN"),
                            "value": p.passport_number})
    names = [_drop_empty({"use": "official", "text": p.full_name, "family": p.family_name,
                          "given": p.given_names})]
    if p.preferred_name:
        names.append({"use": "usual", "text": p.preferred_name})
    telecom = [_drop_empty({"system": system, "value": value, "rank": rank})
               for system, value, rank in (("phone", p.phone_primary, 1),
                                           ("phone", p.phone_secondary, 2),
                                           ("email", p.email, None)) if value]
    address = _drop_empty({
        "use": "home", "line": [x for x in (p.address_line1, p.address_line2) if x],
        "city": p.city, "state": p.state, "postalCode": p.postal_code, "country": p.country,
    })
    contact = _drop_empty({
        "relationship": [_concept(f"{HL7}/v2-0131", "C", "Emergency Contact")]
        + ([{"text": p.emergency_contact_relationship}]
           if p.emergency_contact_relationship else []),
        "name": _drop_empty({"text": p.emergency_contact_name}),
        "telecom": [{"system": "phone", "value": p.emergency_contact_phone}]
        if p.emergency_contact_phone else [],
    }) if (p.emergency_contact_name or p.emergency_contact_phone) else None
    marital = None
    if p.marital_status in MARITAL_STATUS:
        marital = _concept(f"{HL7}/v3-MaritalStatus", MARITAL_STATUS[p.marital_status])
    elif p.marital_status:
        marital = _concept(f"{HL7}/v3-NullFlavor", "UNK")
    resource = _drop_empty({
        "id": str(p.id), "identifier": identifiers, "active": p.is_active, "name": names,
        "telecom": telecom, "gender": p.gender, "birthDate": p.birth_date,
        "address": [address] if address else [], "maritalStatus": marital,
        "contact": [contact] if contact else [],
        "communication": [{"language": {"text": p.language_preference}}]
        if p.language_preference else [],
        "generalPractitioner": [_ref("Practitioner", p.primary_professional_id)]
        if p.primary_professional_id in practitioners else [],
    })
    if p.deceased_date is not None:
        resource["deceasedDateTime"] = p.deceased_date.isoformat()
    elif p.deceased_indicator:
        resource["deceasedBoolean"] = True
    return _valid(Patient, resource)


def fhir_clinical_lists(p: PatientRead) -> list[FhirJson]:
    """Allergies, conditions, medications and blood group as their FHIR resources."""
    subject = _ref("Patient", p.id)
    out: list[FhirJson] = []

    def rid(kind: str, i: int) -> str:
        return str(uuid.uuid5(p.id, f"{kind}:{i}"))

    for i, item in enumerate(p.allergies):
        out.append(_valid(AllergyIntolerance, {
            "id": rid("allergy", i), "patient": subject, "code": {"text": item},
            "clinicalStatus": _concept(f"{HL7}/allergyintolerance-clinical", "active")}))
    for i, item in enumerate(p.chronic_conditions):
        out.append(_valid(Condition, {
            "id": rid("condition", i), "subject": subject, "code": {"text": item},
            "clinicalStatus": _concept(f"{HL7}/condition-clinical", "active")}))
    for i, item in enumerate(p.current_medications):
        out.append(_valid(MedicationStatement, {
            "id": rid("medication", i), "status": "active", "subject": subject,
            "medicationCodeableConcept": {"text": item}}))
    if p.blood_type:
        out.append(_valid(Observation, {
            "id": rid("blood-group", 0), "status": "final", "subject": subject,
            "category": [_concept(f"{HL7}/observation-category", "laboratory")],
            "code": _concept("http://loinc.org", "882-1", "ABO and Rh group [Type] in Blood"),
            "valueCodeableConcept": {"text": p.blood_type}}))
    return out


def fhir_practitioner(row: dict[str, Any]) -> FhirJson:
    council = "-".join(x for x in (row["council_type"], row["council_state"]) if x)
    identifier = [_drop_empty({"type": {"text": council}, "value": row["council_license"]})] \
        if row["council_license"] else []
    qualification = row["specialization"] or row["council_type"]
    return _valid(Practitioner, _drop_empty({
        "id": str(row["id"]), "identifier": identifier, "name": [{"text": row["full_name"]}],
        "qualification": [{"code": {"text": qualification}}] if qualification else [],
    }))


def fhir_appointment(a: AppointmentRead) -> FhirJson:
    status = APPOINTMENT_STATUS[AppointmentStatus(a.status)]
    notes = [f"{label}: {getattr(a, name)}" for name, label in NOTE_LABELS if getattr(a, name)]
    reason = a.cancellation_reason or (
        "rescheduled" if a.status == AppointmentStatus.RESCHEDULED else None)
    service = _drop_empty({
        "text": a.tuss_procedure_name,
        "coding": [_drop_empty({"code": a.tuss_code, "display": a.tuss_procedure_name})]
        if a.tuss_code else [],
    })
    minutes = int((a.end_time - a.start_time).total_seconds() // 60)
    return _valid(Appointment, _drop_empty({
        "id": str(a.id), "status": status, "start": a.start_time, "end": a.end_time,
        "minutesDuration": minutes if minutes > 0 else None, "created": a.created_at,
        "appointmentType": {"text": a.appointment_type},
        "serviceType": [service] if service else [],
        "reasonCode": [{"text": a.chief_complaint}] if a.chief_complaint else [],
        "description": a.tuss_procedure_name,
        "comment": "\n\n".join(notes) or None,
        "patientInstruction": a.follow_up_instructions,
        "cancelationReason": {"text": reason} if reason and status in (
            "cancelled", "noshow") else None,
        "participant": [
            {"actor": _ref("Patient", a.patient_id), "status": "accepted"},
            {"actor": _ref("Practitioner", a.professional_id), "status": "accepted"},
        ],
    }))


def fhir_consent(c: ConsentRead, in_force: set[uuid.UUID]) -> FhirJson:
    """One ledger row. Only the grant that is its purpose's latest decision and in force
    (``in_force``: from ``neonpro_consent_state``) is ``active``; every other grant (an
    older one, one revoked or expired, one a later revocation of any grant withdrew) is
    ``inactive``."""
    status = CONSENT_STATUS[ConsentStatus(c.status)]
    if status == "active" and c.id not in in_force:
        status = "inactive"
    purpose = ConsentPurpose(c.purpose)
    scope_code, scope_display = CONSENT_SCOPE.get(purpose, PRIVACY_SCOPE)
    purposes = [{"system": f"{NEONPRO}/CodeSystem/consent-purpose", "code": c.purpose}]
    if purpose in PURPOSE_OF_USE:
        purposes.append({"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                         "code": PURPOSE_OF_USE[purpose]})
    end = c.revoked_at or c.expires_at
    extensions: list[dict[str, Any]] = [
        {"url": f"{NEONPRO}/StructureDefinition/lgpd-legal-basis", "valueCode": c.legal_basis},
        {"url": f"{NEONPRO}/StructureDefinition/terms-version", "valueString": c.terms_version},
        {"url": f"{NEONPRO}/StructureDefinition/terms-sha256", "valueString": c.terms_hash},
    ]
    if c.collection_method:
        extensions.append({"url": f"{NEONPRO}/StructureDefinition/collection-method",
                           "valueCode": c.collection_method})
    if c.supersedes_id is not None:
        extensions.append({"url": f"{NEONPRO}/StructureDefinition/supersedes",
                           "valueReference": _ref("Consent", c.supersedes_id)})
    return _valid(Consent, _drop_empty({
        "id": str(c.id), "extension": extensions, "status": status,
        "identifier": [{"system": f"{NEONPRO}/NamingSystem/consent-record",
                        "value": str(c.id)}],
        "scope": _concept(f"{HL7}/consentscope", scope_code, scope_display),
        "category": [_concept("http://loinc.org", "59284-0", "Patient Consent")] + [
            _concept(f"{NEONPRO}/CodeSystem/lgpd-data-category", cat)
            for cat in c.data_categories],
        "patient": _ref("Patient", c.patient_id),
        "performer": [_ref("Patient", c.patient_id)],
        "dateTime": c.created_at,
        "policy": [{"authority": "https://www.gov.br/anpd", "uri": LGPD_URI}],
        "provision": _drop_empty({
            "type": "permit", "purpose": purposes,
            "period": _drop_empty({"start": c.given_at, "end": end}),
        }),
    }))


def fhir_bundle_json(data: PatientData, generated_at: datetime) -> FhirJson:
    """A FHIR R4 Bundle of type ``collection`` as JSON-ready data, every resource validated
    by its ``fhir.resources.R4B`` model; references are the entries' ``urn:uuid:`` full
    URLs, so the Bundle resolves on its own."""
    practitioners = {row["id"] for row in data.professionals}
    in_force = {s.decision_id for s in data.consent_states if s.in_force}
    resources = [fhir_patient(data.patient, practitioners)]
    resources += fhir_clinical_lists(data.patient)
    resources += [fhir_practitioner(row) for row in data.professionals]
    resources += [fhir_appointment(a) for a in data.appointments]
    resources += [fhir_consent(c, in_force) for c in data.consents]
    bundle_id = uuid.uuid4()
    envelope = _valid(Bundle, {
        "id": str(bundle_id), "type": "collection", "timestamp": generated_at,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"}})
    envelope["entry"] = [_valid(BundleEntry, {"fullUrl": f"urn:uuid:{r['id']}"},
                                  resource=False) | {"resource": r} for r in resources]
    return envelope


def to_fhir_bundle(data: PatientData, generated_at: datetime) -> Bundle:
    """The Bundle as its ``fhir.resources`` model."""
    return Bundle.model_validate(fhir_bundle_json(data, generated_at))


def to_fhir(data: PatientData, generated_at: datetime) -> bytes:
    """The FHIR Bundle as UTF-8 JSON bytes.

    Each resource is validated by its model, but the bytes are written from the validated
    data by ``pydantic_core.to_json`` (the JSON encoder the models' own ``model_dump_json``
    ends in): the models' serializer walks every element in Python and cost 60 % of a
    500-appointment export. The data is built in the shape the models emit (FHIR names, no
    empty elements, nothing the validation changes), and a test checks that the Bundle
    parsed back from these bytes serializes to the same JSON."""
    return pydantic_core.to_json(fhir_bundle_json(data, generated_at))


def render(data: PatientData, fmt: ExportFormat, generated_at: datetime,
           request_id: uuid.UUID | None = None) -> bytes:
    if fmt is ExportFormat.FHIR:
        return to_fhir(data, generated_at)
    return to_json(data, generated_at, request_id)
