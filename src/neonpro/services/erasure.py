"""Erasure (right to be forgotten) decided by law, and the audited legal-hold read.

``plan_erasure`` shows the per-category decision; ``erase_patient`` carries it out in one
transaction: deletes or anonymizes what no law requires keeping, blocks the medical record
under its 20-year hold (hidden from every normal query), records each decision with its
legal reference in the audit trail and in the erasure ledger (re-applied after restores).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from neonpro.domain.actors import Actor
from neonpro.domain.audit_reports import AuditEntry
from neonpro.domain.erasure import Action, Decision, PatientFacts, decide, outcome
from neonpro.domain.errors import Forbidden, NotBlocked, NotFound, ValidationFailed
from neonpro.domain.ports import UnitOfWork, UnitsOfWork
from neonpro.domain.ports_lgpd import Sealer
from neonpro.domain.schemas.appointment import AppointmentRead
from neonpro.domain.schemas.patient import PatientRead
from neonpro.domain.vocabulary import AuditAction, AuditResource, ClinicRole, RiskLevel

AUDIT_ACTION = {Action.BLOCK: AuditAction.BLOCK, Action.ANONYMIZE: AuditAction.ANONYMIZE,
                Action.DELETE: AuditAction.DELETE}


@dataclass(frozen=True)
class ErasureResult:
    patient_id: uuid.UUID
    outcome: str
    decisions: list[Decision]
    ledger_id: uuid.UUID


def plan_erasure(uow: UnitOfWork, patient_id: uuid.UUID) -> list[Decision]:
    with uow:
        facts = uow.erasures.facts(patient_id)
        uow.commit()
    return decide(facts)


def erase_patient(uow: UnitOfWork, patient_id: uuid.UUID,
                  request_id: uuid.UUID | None = None) -> ErasureResult:
    """Erase one patient as the law allows; every decision audited with its reference.

    ``uow`` is ``container.admin_uow(clinic_id, actor)``: blocking hides rows from the
    application role, so the change runs with the service role, scoped to the clinic.
    """
    with uow:
        if request_id is not None and not uow.erasures.is_request_of(request_id, patient_id):
            # the ledger names the request as the erasure's grounds: another clinic's, or
            # another patient's, is no grounds (and the ledger row is forever)
            raise ValidationFailed("request_id",
                                   "is not a data-subject request of this patient")
        result = erase_in(uow, patient_id, request_id)
        uow.commit()
    return result


def erase_in(uow: UnitOfWork, patient_id: uuid.UUID, request_id: uuid.UUID | None = None,
             *, hold_expired: bool = False) -> ErasureResult:
    """Inside an open (admin) unit of work: decide, audit, apply, record in the ledger.

    ``hold_expired``: the medical-record hold has run out (retention engine), so nothing is
    blocked any more: everything is deleted or anonymized.
    """
    return erase_many_in(uow, [patient_id], request_id, hold_expired=hold_expired)[0]


@cache
def _details(d: Decision) -> dict[str, str]:
    """The audit details of a decision (one shared object per distinct decision)."""
    return {"category": d.category.value, "action": d.action.value,
            "legal_reference": d.legal_reference}


def erase_many_in(uow: UnitOfWork, patient_ids: Sequence[uuid.UUID],
                  request_id: uuid.UUID | None = None, *,
                  hold_expired: bool = False) -> list[ErasureResult]:
    """:func:`erase_in` for a batch of patients, set-based: each patient gets its own
    decisions, audit events (one per decision, with its legal reference) and ledger entry,
    but patients with the same facts share the same decisions, so each table is changed
    by one statement per group, not per patient. Results in the order of ``patient_ids``."""
    ids = list(dict.fromkeys(patient_ids))
    if not ids:
        return []
    repo = uow.erasures
    facts = repo.facts_many(ids)
    decided: dict[uuid.UUID, list[Decision]] = {}
    groups: dict[PatientFacts, list[uuid.UUID]] = {}
    events: list[AuditEntry] = []
    for patient_id in ids:
        fact = facts[patient_id]
        if hold_expired:
            fact = PatientFacts(has_clinical_record=False,
                                has_consent_records=fact.has_consent_records)
        decisions = decide(fact)
        decided[patient_id] = decisions
        groups.setdefault(fact, []).append(patient_id)
        events.extend(AuditEntry(action, patient_id, patient_id, _details(d))
                      for d in decisions if (action := AUDIT_ACTION.get(d.action)) is not None)
    uow.audit.record_many(events, AuditResource.PATIENT, risk=RiskLevel.MEDIUM)
    for members in groups.values():
        repo.apply_many(members, decisions=decided[members[0]], unblock=hold_expired)
    # answers kept for Idempotency-Key retries are copies of the record: they go too
    uow.idempotency.scrub(ids)
    outcomes = {patient_id: outcome(decided[patient_id]) for patient_id in ids}
    ledger = repo.record_many([(p, decided[p], outcomes[p]) for p in ids], request_id)
    return [ErasureResult(p, outcomes[p], decided[p], entry)
            for p, entry in zip(ids, ledger, strict=True)]


@dataclass(frozen=True)
class HeldRecord:
    patient: PatientRead
    appointments: list[AppointmentRead]


# who may read a record blocked under a legal hold: the data-protection officer and the
# clinic's administrator (regulations.md: "only a legal-hold read by an authorized role")
LEGAL_HOLD_ROLES = frozenset({ClinicRole.DPO.value, ClinicRole.ADMIN.value})
JUSTIFICATION_MIN = 10
JUSTIFICATION_MAX = 1000
# the justification is free text (it may name the patient, a court case, a diagnosis): the
# audit trail keeps it encrypted like clinical text, bound to this context and to a random
# reference stored beside it, never in clear
JUSTIFICATION_TABLE, JUSTIFICATION_COLUMN = "audit_events", "details.justification"


def check_justification(justification: str | None) -> str:
    """The stated reason of a legal-hold read: required, ``JUSTIFICATION_MIN`` to
    ``JUSTIFICATION_MAX`` characters once trimmed (the error names the field, not the
    text)."""
    reason = (justification or "").strip()
    if not reason:
        raise ValidationFailed("justification", "a legal-hold read needs a stated "
                               "justification")
    if len(reason) < JUSTIFICATION_MIN or len(reason) > JUSTIFICATION_MAX:
        raise ValidationFailed("justification", f"must be {JUSTIFICATION_MIN} to "
                               f"{JUSTIFICATION_MAX} characters")
    return reason


def sealed_justification(cipher: Sealer, reason: str) -> dict[str, str]:
    """The audit details that hold a justification: its ciphertext and the reference the
    ciphertext is bound to."""
    ref = uuid.uuid4()
    blob = cipher.encrypt(reason, table=JUSTIFICATION_TABLE, column=JUSTIFICATION_COLUMN,
                          row_id=ref)
    return {"justification_ref": str(ref),
            "justification_encrypted": base64.b64encode(blob).decode("ascii")}


def reveal_justification(cipher: Sealer, details: dict[str, str]) -> str:
    """The justification recorded in a ``LEGAL_HOLD_READ`` event's details (for the DPO
    reviewing the trail; needs the key ring)."""
    return cipher.decrypt(base64.b64decode(details["justification_encrypted"]),
                          table=JUSTIFICATION_TABLE, column=JUSTIFICATION_COLUMN,
                          row_id=uuid.UUID(details["justification_ref"]))


def legal_hold_read(units: UnitsOfWork, sealer: Sealer, clinic_id: uuid.UUID,
                    patient_id: uuid.UUID, actor: Actor,
                    justification: str | None) -> HeldRecord:
    """Read a blocked record through the legal-hold role, for a DPO or an admin with a
    stated justification.

    Refused (``Forbidden``, itself audited as ``PERMISSION_DENIED``) to every other role,
    system actors included: the law lets an authorized person read a held record, and the
    trail must name who. ``NotFound`` when the clinic has no such patient, ``NotBlocked``
    (409) when the patient is not blocked (it is read the ordinary way). The read is audited
    first (high risk, the justification encrypted with ``sealer``), in its own committed
    transaction."""
    audit = units.uow(clinic_id, actor)
    with audit:
        if actor.role not in LEGAL_HOLD_ROLES:
            raise Forbidden(f"the {actor.role} role may not read records under a legal hold")
        reason = check_justification(justification)
        audit.rollback()
    held = units.legal_hold_uow(clinic_id, actor)
    with held:
        blocked = held.erasures.is_blocked(patient_id)
        held.rollback()
    if blocked is None:
        raise NotFound("patient", patient_id)
    if not blocked:
        raise NotBlocked("patient", patient_id)
    audit = units.uow(clinic_id, actor)
    with audit:
        audit.audit.record(AuditAction.LEGAL_HOLD_READ, AuditResource.PATIENT, patient_id,
                           patient_id=patient_id, risk=RiskLevel.HIGH,
                           details=sealed_justification(sealer, reason))
        audit.commit()
    held = units.legal_hold_uow(clinic_id, actor)
    with held:
        patient = held.patients.find(patient_id)
        if patient is None:  # gone between the check and the read
            raise NotFound("patient", patient_id)
        page = held.appointments.list_for_patient(patient_id)
        held.rollback()
    return HeldRecord(patient, page.items)


def reapply_erasures(units: UnitsOfWork, actor: Actor, since: datetime | None = None,
                     clinic_id: uuid.UUID | None = None) -> int:
    """After a restore: erase again every patient the ledger says was erased (at or after
    ``since``) whose restored row came back unerased. Returns how many were re-erased."""
    with units.service_uow(actor) as ledger:
        due = ledger.erasures.to_reapply(since, clinic_id)
        ledger.rollback()  # a read
    for entry in due:
        patient_id = entry.patient_id
        uow = units.admin_uow(entry.clinic_id, actor)
        with uow:
            # the ledger's outcome, not a new decision on the restored row: an anonymization
            # made when the medical-record hold had run out is an anonymization again
            erase_in(uow, patient_id, hold_expired=entry.outcome != "blocked")
            uow.audit.record(AuditAction.RESTORE, AuditResource.ERASURE_LEDGER, patient_id,
                             patient_id=patient_id, details={"reapplied": True})
            uow.commit()
    return len(due)
