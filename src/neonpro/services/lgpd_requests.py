"""Data-subject requests (LGPD Art. 18, 19): open, verify, progress, answer, and the export.

Each function owns one transaction of its unit of work. Every change to a request is
audited by the table's row trigger (CREATE/UPDATE with the changed fields); reads are
audited here (VIEW), and an export is an EXPORT event (medium risk) in the same
transaction as the read and, when tied to a request, as the stored answer hash.

Status graph: ``open -> in_progress -> fulfilled | refused`` and ``open -> fulfilled |
refused``; fulfilled and refused are final. Fulfilling needs the requester's identity
verified first and records the SHA-256 of the answer sent (or of the export made for the
request). The answer is due 15 days after receipt (Art. 19 II).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, Field

from neonpro.domain.erasure import Decision, in_order
from neonpro.domain.errors import Conflict, InvalidTransition, ValidationFailed
from neonpro.domain.lgpd import TRANSITIONS
from neonpro.domain.ports import DsrRepository, UnitOfWork
from neonpro.domain.schemas._types import Instant, Schema
from neonpro.domain.schemas.dsr import DataSubjectRequestRead
from neonpro.domain.vocabulary import (
    AuditAction,
    AuditResource,
    ConsentPurpose,
    ConsentStatus,
    ConsentStatusSummary,
    DataSubjectRequestKind,
    DataSubjectRequestStatus,
    LegalBasis,
    RiskLevel,
)
from neonpro.queries import export as export_queries
from neonpro.queries.export import ExportFormat
from neonpro.services import erasure
from neonpro.services.erasure import ErasureResult

__all__ = [
    "ANSWER_WITHIN", "Confirmation", "DataSubjectRequestRead", "ExportFormat", "ExportResult",
    "LegalBasisUse", "RequestFulfil", "RequestOpen", "RequestRefuse", "WithdrawnConsent",
    "confirm_processing",
    "export_patient", "fulfil_request", "get_request", "list_requests", "open_request",
    "refuse_request", "start_request", "verify_identity",
]

ANSWER_WITHIN = timedelta(days=15)  # Art. 19 II: the full statement, 15 days from receipt
CLOCK_SKEW = timedelta(minutes=5)
ENTITY = "data_subject_request"
RESOURCE = AuditResource.DATA_SUBJECT_REQUESTS
S = DataSubjectRequestStatus
# what an export answers: access (II), portability (V), with whom it was shared (VII)
EXPORTABLE = frozenset({DataSubjectRequestKind.ACCESS, DataSubjectRequestKind.PORTABILITY,
                        DataSubjectRequestKind.SHARING_INFORMATION})
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$",
                                 description="SHA-256 of the answer (lowercase hex)")]


# ------------------------------------------------------------------------- inputs
class RequestOpen(Schema):
    """A request as received from the patient (identity is verified in a later step)."""

    patient_id: uuid.UUID
    kind: DataSubjectRequestKind
    received_at: Instant | None = Field(
        default=None, description="when the clinic received it (default: now)")


class RequestFulfil(Schema):
    """The answer sent: its text, or its SHA-256; neither keeps the hash of the export
    made for the request."""

    response: str | None = Field(default=None, max_length=1_000_000,
                                 description="the answer sent (hashed, not stored)")
    response_sha256: Sha256Hex | None = None


class RequestRefuse(Schema):
    reason: str = Field(min_length=1, max_length=2000,
                        description="why (Art. 18 §4): no personal data, please")


# ------------------------------------------------------------------------ helpers
def _repo(uow: UnitOfWork) -> DsrRepository:
    return uow.subject_requests


def _move(uow: UnitOfWork, request_id: uuid.UUID, target: DataSubjectRequestStatus,
          values: dict[str, Any] | None = None,
          check: Callable[[DataSubjectRequestRead], None] | None = None,
          ) -> DataSubjectRequestRead:
    """Lock the request, check the status graph (and ``check(current)``), then change it."""
    repo = _repo(uow)
    current = repo.get(request_id, for_update=True)
    if target not in TRANSITIONS.get(current.status, frozenset()):
        raise InvalidTransition(ENTITY, current.status, target.value)
    if check is not None:
        check(current)
    changed = repo.change(request_id, current.status, {"status": target.value, **(values or {})})
    if changed is None:  # pragma: no cover - the row lock makes this unreachable
        raise Conflict(f"{ENTITY} {request_id} changed meanwhile", "status")
    return changed


# ----------------------------------------------------------------------- requests
def open_request(uow: UnitOfWork, data: RequestOpen,
                 now: datetime | None = None) -> DataSubjectRequestRead:
    """Record a request of one of this clinic's patients, due 15 days after receipt."""
    now = now or datetime.now(UTC)
    received = data.received_at or now
    if received > now + CLOCK_SKEW:
        raise ValidationFailed("received_at", "is in the future")
    with uow:
        uow.patients.get(data.patient_id)  # NotFound for another clinic's or a deleted patient
        request = _repo(uow).add(data.patient_id, data.kind, received, received + ANSWER_WITHIN)
        uow.commit()
    return request


def get_request(uow: UnitOfWork, request_id: uuid.UUID) -> DataSubjectRequestRead:
    with uow:
        request = _repo(uow).get(request_id)
        uow.audit.record(AuditAction.VIEW, RESOURCE, request_id, patient_id=request.patient_id)
        uow.commit()
    return request


def list_requests(uow: UnitOfWork, *, overdue: bool = False,
                  status: DataSubjectRequestStatus | None = None,
                  patient_id: uuid.UUID | None = None,
                  now: datetime | None = None) -> list[DataSubjectRequestRead]:
    """Requests by due date (the first 1,000). ``overdue``: still open or in progress past
    their due date. A service unit of work lists every clinic's (the operator's view)."""
    at = now or datetime.now(UTC)
    with uow:
        rows = _repo(uow).list(overdue_at=at if overdue else None, status=status,
                               patient_id=patient_id)
        uow.audit.record(AuditAction.VIEW, RESOURCE, patient_id=patient_id, details={
            "returned": len(rows), "overdue": overdue,
            "status": status.value if status else None})
        uow.commit()
    return rows


def verify_identity(uow: UnitOfWork, request_id: uuid.UUID) -> DataSubjectRequestRead:
    """Record that the acting user verified the requester is the patient (or their legal
    representative); the request keeps its status."""
    with uow:
        repo = _repo(uow)
        current = repo.get(request_id, for_update=True)
        if current.status not in TRANSITIONS:
            raise InvalidTransition(ENTITY, current.status, "identity_verified")
        if current.identity_verified_at is not None:
            raise Conflict("the requester's identity is already verified", "identity_verified_at")
        changed = repo.change(request_id, current.status, {
            "identity_verified_by": uow.actor.id, "identity_verified_at": datetime.now(UTC)})
        assert changed is not None  # noqa: S101  (row locked above)
        uow.commit()
    return changed


def start_request(uow: UnitOfWork, request_id: uuid.UUID) -> DataSubjectRequestRead:
    with uow:
        request = _move(uow, request_id, S.IN_PROGRESS)
        uow.commit()
    return request


def _answer_hash(data: RequestFulfil) -> str | None:
    given = None if data.response is None else hashlib.sha256(
        data.response.encode()).hexdigest()
    if given and data.response_sha256 and given != data.response_sha256:
        raise ValidationFailed("response_sha256", "does not match the response given")
    return given or data.response_sha256


def fulfil_request(uow: UnitOfWork, request_id: uuid.UUID,
                   data: RequestFulfil | None = None) -> DataSubjectRequestRead:
    """Close the request as answered: identity verified, the answer's hash recorded."""
    digest = _answer_hash(data or RequestFulfil())

    def check(current: DataSubjectRequestRead) -> None:
        if current.identity_verified_at is None:
            raise Conflict("verify the requester's identity before fulfilling",
                           "identity_verified_at")
        if digest is None and current.response_sha256 is None:
            raise ValidationFailed("response_sha256",
                                   "give the answer sent (or its SHA-256), or export for the "
                                   "request first")
        if current.kind == DataSubjectRequestKind.DELETION \
                and not uow.erasures.has_entry(current.patient_id):
            # a deletion request is answered by the erasure (fulfil_by_erasure, or the
            # erasure endpoint first): never closed with the patient's data intact
            raise Conflict("erase the patient before fulfilling a deletion request",
                           "erasure")

    values: dict[str, Any] = {"fulfilled_at": datetime.now(UTC)}
    if digest is not None:
        values["response_sha256"] = digest
    with uow:
        request = _move(uow, request_id, S.FULFILLED, values, check)
        uow.commit()
    return request


def fulfil_by_erasure(admin_uow: UnitOfWork, request_id: uuid.UUID,
                      answer: Callable[[list[Decision], datetime], str],
                      ) -> tuple[DataSubjectRequestRead, ErasureResult, str]:
    """A deletion request (Art. 18 VI) answered in one transaction: the patient erased as
    the law allows (``erasure.erase_in``: each decision audited, the ledger naming this
    request as grounds) and the request fulfilled with the SHA-256 of
    ``answer(decisions, fulfilled_at)``, the text the patient is sent
    (:func:`erasure_of_request` gives the decisions back later, so the text can be rebuilt
    and checked against the hash). Either both happen or neither: no patient erased under a
    request left open, refused or answered by someone else meanwhile.

    ``admin_uow`` is ``container.admin_uow(clinic_id, actor)`` (erasing blocks rows, hidden
    from the application role). The request must be a deletion request, pending, with the
    requester's identity verified."""
    def check(current: DataSubjectRequestRead) -> None:
        if current.kind != DataSubjectRequestKind.DELETION:
            raise ValidationFailed("kind", "only a deletion request erases the patient")
        if current.identity_verified_at is None:
            raise Conflict("verify the requester's identity before erasing",
                           "identity_verified_at")

    with admin_uow:
        repo = _repo(admin_uow)
        current = repo.get(request_id, for_update=True)  # held until the commit
        if S.FULFILLED not in TRANSITIONS.get(current.status, frozenset()):
            raise InvalidTransition(ENTITY, current.status, S.FULFILLED.value)
        check(current)
        result = erasure.erase_in(admin_uow, current.patient_id, request_id)
        now = datetime.now(UTC)
        text = answer(in_order(result.decisions), now)
        request = repo.change(request_id, current.status, {
            "status": S.FULFILLED.value, "fulfilled_at": now,
            "response_sha256": hashlib.sha256(text.encode()).hexdigest()})
        if request is None:  # pragma: no cover - the row lock makes this unreachable
            raise Conflict(f"{ENTITY} {request_id} changed meanwhile", "status")
        admin_uow.commit()
    return request, result, text


def erasure_of_request(uow: UnitOfWork, request_id: uuid.UUID) -> list[Decision] | None:
    """What the erasure made for this request decided, per category (None: none was)."""
    with uow:
        _repo(uow).get(request_id)  # NotFound for another clinic's
        decisions = uow.erasures.decisions_for_request(request_id)
        uow.commit()
    return decisions


def refuse_request(uow: UnitOfWork, request_id: uuid.UUID,
                   data: RequestRefuse) -> DataSubjectRequestRead:
    """Close the request as refused, with the reason given to the patient (Art. 18 §4)."""
    reason = data.reason.strip()
    if not reason:
        raise ValidationFailed("reason", "must not be blank")
    with uow:
        request = _move(uow, request_id, S.REFUSED, {"refusal_reason": reason})
        uow.commit()
    return request


# ------------------------------------------------------------------- confirmation
class LegalBasisUse(BaseModel):
    """One purpose the patient's data is processed for, and its legal basis."""

    legal_basis: LegalBasis
    purpose: str
    source: str = Field(description="consent_ledger, care, or law")
    reference: str
    since: datetime | None = None
    until: datetime | None = None


class WithdrawnConsent(BaseModel):
    """A purpose no longer processed: its consent was revoked or has expired."""

    purpose: str
    status: str
    at: datetime


class Confirmation(BaseModel):
    """The immediate answer of Art. 18 I / Art. 19 I: whether, since when, what, why."""

    patient_id: uuid.UUID
    clinic_id: uuid.UUID
    processes_data: bool
    since: datetime | None
    categories: list[str]
    legal_bases: list[LegalBasisUse]
    withdrawn: list[WithdrawnConsent]
    records: dict[str, int]
    shared_with_third_parties: bool
    generated_at: datetime


BASIS_REFERENCE = {
    LegalBasis.CONSENT: "LGPD Art. 11 I", LegalBasis.LEGAL_OBLIGATION: "LGPD Art. 11 II a",
    LegalBasis.RESEARCH: "LGPD Art. 11 II c", LegalBasis.RIGHTS_EXERCISE: "LGPD Art. 11 II d",
    LegalBasis.LIFE_PROTECTION: "LGPD Art. 11 II e",
    LegalBasis.HEALTH_PROTECTION: "LGPD Art. 11 II f",
    LegalBasis.FRAUD_PREVENTION: "LGPD Art. 11 II g", LegalBasis.CONTRACT: "LGPD Art. 7 V",
    LegalBasis.LEGITIMATE_INTEREST: "LGPD Art. 7 IX",
}
MEDICAL_RECORD = "Lei 13.787/2018 Art. 6; CFM Res. 1.821/2007"


def _legal_bases(uow: UnitOfWork, patient_id: uuid.UUID, registered: datetime, *,
                 clinical: bool, now: datetime) -> tuple[list[LegalBasisUse],
                                                         list[WithdrawnConsent]]:
    # the state of each purpose: the latest decision wins (neonpro_consent_state), so a
    # purpose is either in force or withdrawn/expired, never both
    states = uow.consents.states(patient_id, at=now)
    uses: dict[tuple[str, str], LegalBasisUse] = {
        (LegalBasis.HEALTH_PROTECTION, ConsentPurpose.TREATMENT): LegalBasisUse(
            legal_basis=LegalBasis.HEALTH_PROTECTION, purpose=ConsentPurpose.TREATMENT,
            source="care", reference=BASIS_REFERENCE[LegalBasis.HEALTH_PROTECTION],
            since=registered),
    }
    if clinical:
        uses[(LegalBasis.LEGAL_OBLIGATION, "medical_record_keeping")] = LegalBasisUse(
            legal_basis=LegalBasis.LEGAL_OBLIGATION, purpose="medical_record_keeping",
            source="law", reference=MEDICAL_RECORD, since=registered)
    withdrawn: list[WithdrawnConsent] = []
    for c in states:
        if c.state == ConsentStatusSummary.WITHDRAWN:
            withdrawn.append(WithdrawnConsent(purpose=c.purpose, status=ConsentStatus.REVOKED.value,
                                              at=c.decided_at or now))
            continue
        if c.state == ConsentStatusSummary.EXPIRED:
            withdrawn.append(WithdrawnConsent(purpose=c.purpose, status=ConsentStatus.EXPIRED.value,
                                              at=c.expires_at or c.decided_at or now))
            continue
        basis = LegalBasis(c.legal_basis)
        uses[(basis, c.purpose)] = LegalBasisUse(
            legal_basis=basis, purpose=c.purpose, source="consent_ledger",
            reference=BASIS_REFERENCE[basis], since=c.given_at, until=c.expires_at)
    return list(uses.values()), withdrawn


def confirm_processing(uow: UnitOfWork, patient_id: uuid.UUID,
                       now: datetime | None = None) -> Confirmation:
    """Answer at once whether the clinic processes the patient's data, since when, which
    categories (from the data present) and on which legal bases (the consent ledger, and
    care and record keeping for health data). Audited as a read of the patient."""
    now = now or datetime.now(UTC)
    with uow:
        patient = uow.patients.get(patient_id)
        held = uow.records.holdings(patient)
        clinical = "clinical" in held.categories
        bases, withdrawn = _legal_bases(uow, patient_id, patient.created_at,
                                         clinical=clinical, now=now)
        uow.audit.record(AuditAction.VIEW, AuditResource.PATIENT, patient_id, patient_id=patient_id,
                         details={"lgpd": "confirmation"})
        uow.commit()
    return Confirmation(
        patient_id=patient_id, clinic_id=patient.clinic_id,
        processes_data=patient.anonymized_at is None, since=held.first_recorded_at,
        categories=held.categories, legal_bases=bases, withdrawn=withdrawn,
        records=held.counts, shared_with_third_parties=held.counts["disclosures"] > 0,
        generated_at=now,
    )


# ------------------------------------------------------------------------- export
@dataclass(frozen=True)
class ExportResult:
    """The exact bytes handed over, and their SHA-256 (stored on the request if any)."""

    content: bytes
    format: ExportFormat
    sha256: str
    patient_id: uuid.UUID
    request_id: uuid.UUID | None
    generated_at: datetime
    counts: dict[str, int]

    @property
    def media_type(self) -> str:
        return export_queries.MEDIA_TYPES[self.format]

    @property
    def filename(self) -> str:
        suffix = "fhir.json" if self.format is ExportFormat.FHIR else "json"
        stamp = self.generated_at.strftime("%Y%m%dT%H%M%SZ")
        return f"lgpd-export-{self.patient_id}-{stamp}.{suffix}"


def _check_exportable(request: DataSubjectRequestRead, patient_id: uuid.UUID) -> None:
    if request.patient_id != patient_id:
        raise ValidationFailed("request_id", "belongs to another patient")
    if request.kind not in EXPORTABLE:
        raise ValidationFailed("request_id", f"a {request.kind} request is not answered by "
                               "an export")
    if request.status not in TRANSITIONS:
        raise InvalidTransition(ENTITY, request.status, "exported")


def export_patient(uow: UnitOfWork, patient_id: uuid.UUID,
                   fmt: ExportFormat = ExportFormat.JSON, *,
                   request_id: uuid.UUID | None = None,
                   now: datetime | None = None) -> ExportResult:
    """Everything held about the patient, as JSON or a FHIR R4 Bundle, in one transaction.

    The EXPORT audit event (medium risk) and, with ``request_id``, the export's SHA-256 on
    the request (which moves from open to in progress) commit with the read, or neither
    does."""
    generated_at = now or datetime.now(UTC)
    with uow:
        repo = _repo(uow)
        request = None
        if request_id is not None:
            request = repo.get(request_id, for_update=True)
            _check_exportable(request, patient_id)
        data = uow.records.collect(patient_id)
        content = export_queries.render(data, fmt, generated_at, request_id)
        digest = hashlib.sha256(content).hexdigest()
        if request is not None:
            values: dict[str, Any] = {"response_sha256": digest}
            if request.status == S.OPEN:
                values["status"] = S.IN_PROGRESS.value
            repo.change(request.id, request.status, values)
        details: dict[str, Any] = {"format": fmt.value, "sha256": digest,
                                   "records": data.counts()}
        if request_id is not None:
            details["request_id"] = str(request_id)
        uow.audit.record(AuditAction.EXPORT, AuditResource.PATIENT, patient_id,
                         patient_id=patient_id, risk=RiskLevel.MEDIUM, details=details)
        uow.commit()
    return ExportResult(content, fmt, digest, patient_id, request_id, generated_at,
                        data.counts())
