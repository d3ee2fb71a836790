"""Carrying out erasure decisions in SQL, driven by the models' LGPD column declarations.

Each personal-data column says its category and its anonymization rule (``pii()`` in the
models); a category's decision (delete, anonymize, block, keep) picks what happens to it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    DateTime,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from neonpro.adapters.db.models import Appointment, ConsentRecord, ErasureLedgerEntry, Patient
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.erasure import (
    Action,
    Decision,
    LedgerDecision,
    PatientFacts,
    from_ledger,
)
from neonpro.domain.errors import NotFound
from neonpro.domain.vocabulary import (
    ACTIVE_APPOINTMENT_STATUSES,
    AnonymizationRule,
    AppointmentStatus,
    CancellationReason,
)

PATIENTS = cast(Table, Patient.__table__)
APPOINTMENTS = cast(Table, Appointment.__table__)
CONSENTS = cast(Table, ConsentRecord.__table__)
LEDGER = cast(Table, ErasureLedgerEntry.__table__)
P, A = PATIENTS.c, APPOINTMENTS.c
TOOK_PLACE = ("in_progress", "completed", "no_show")
ANONYMOUS_NAME = "Paciente anonimizado"
# every statement below takes the batch of patients as one array parameter, so a batch of
# 1 or of 1,000 patients is the same SQL (one round trip, one cached statement)
IDS = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))


def _erased(column: Column[Any]) -> Any:
    """The empty value of a column: NULL, or its server default when it cannot be NULL."""
    if column.nullable:
        return None
    default = column.server_default
    if default is not None:
        return text(str(default.arg.text))  # type: ignore[attr-defined]
    msg = f"{column.table.name}.{column.name} has no empty value"
    raise ValueError(msg)


def _anonymized(column: Column[Any], rule: AnonymizationRule) -> Any:  # noqa: PLR0911
    if rule is AnonymizationRule.KEEP:
        return column
    if rule is AnonymizationRule.GENERALIZE:
        if column.name in ("birth_date", "deceased_date"):
            # of a timestamp without zone: IMMUTABLE (a date alone would pick the STABLE
            # timestamptz form, which Citus refuses on a column in a distributed UPDATE)
            return func.date_trunc("year", sql_cast(column, DateTime())).cast(column.type)
        if column.name == "postal_code":
            return func.left(column, 5) + "000"
        return _erased(column)
    if rule is AnonymizationRule.REPLACE:
        if column.name == "full_name":
            return ANONYMOUS_NAME
        if column.name == "medical_record_number":
            # unique per clinic: the row's own id, which the anonymized row keeps anyway
            # (not a random value: Citus runs no volatile function in a distributed UPDATE)
            return literal("ANON-") + func.upper(func.replace(
                sql_cast(PATIENTS.c.id, Text), "-", ""))
    return _erased(column)


def patient_changes(decisions: list[Decision]) -> dict[str, Any]:
    """Column -> new value for the patients row under ``decisions``."""
    by_category = {d.category: d.action for d in decisions}
    changes: dict[str, Any] = {}
    for column in PATIENTS.columns:
        lgpd = column.info.get("lgpd")
        if not lgpd or column.computed is not None:
            continue
        action = by_category.get(lgpd["category"], Action.KEEP)
        if action is Action.DELETE:
            changes[column.name] = _erased(column)
        elif action is Action.ANONYMIZE:
            changes[column.name] = _anonymized(column, lgpd["anonymize"])
    return changes


def _facts_query() -> Any:
    took_place = exists().where(
        A.clinic_id == P.clinic_id, A.patient_id == P.id,
        A.status.in_(TOOK_PLACE) | A.clinical_notes_encrypted.is_not(None))
    consents = exists().where(CONSENTS.c.clinic_id == P.clinic_id,
                              CONSENTS.c.patient_id == P.id)
    lists = (func.cardinality(P.allergies) + func.cardinality(P.chronic_conditions)
             + func.cardinality(P.current_medications))
    clinical = (P.patient_notes_encrypted.is_not(None) | (func.coalesce(lists, 0) > 0)
                | P.blood_type.is_not(None) | took_place)
    return select(P.id, clinical.label("clinical"), consents.label("consents")).where(
        P.clinic_id == bindparam("clinic"), P.id == any_(IDS))


FACTS = _facts_query()
# the only change the consent ledger allows (see audit_sql.py)
REMOVE_EVIDENCE = text(
    "SELECT neonpro_remove_consent_evidence(CAST(:patients AS uuid[]), CAST(:ids AS uuid[]), "
    ":reason)")
# ``:entries``: [ledger id, patient id, kind index] per row; ``:kinds``: the distinct
# [outcome, decisions] pairs (a batch of patients shares a handful)
INSERT_LEDGER = text(
    "INSERT INTO erasure_ledger (clinic_id, id, patient_id, request_id, decided_by, outcome, "
    "decisions) SELECT :clinic, CAST(e.x ->> 0 AS uuid), CAST(e.x ->> 1 AS uuid), "
    "CAST(:request AS uuid), :actor, k.x ->> 0, k.x -> 1 "
    "FROM jsonb_array_elements(CAST(:entries AS jsonb)) WITH ORDINALITY AS e(x, n) "
    "JOIN jsonb_array_elements(CAST(:kinds AS jsonb)) WITH ORDINALITY AS k(x, i) "
    "ON k.i = (e.x ->> 2)::int + 1 ORDER BY e.n")

REQUEST_OF_PATIENT = text("SELECT 1 FROM data_subject_requests WHERE clinic_id = :clinic "
                          "AND id = :request AND patient_id = :patient")
HAS_ENTRY = text("SELECT 1 FROM erasure_ledger WHERE clinic_id = :clinic "
                 "AND patient_id = :patient LIMIT 1")
FOR_REQUEST = text("SELECT decisions FROM erasure_ledger WHERE clinic_id = :clinic "
                   "AND request_id = :request ORDER BY decided_at, id LIMIT 1")
IS_BLOCKED = text("SELECT blocked_at IS NOT NULL FROM patients "
                  "WHERE clinic_id = :clinic AND id = :patient")
# each patient's latest decision only (a record blocked, then anonymized when its hold ran
# out, must come back anonymized)
TO_REAPPLY = text(
    "SELECT l.clinic_id, l.patient_id, l.outcome FROM ("
    "  SELECT DISTINCT ON (clinic_id, patient_id) clinic_id, patient_id, outcome, decided_at "
    "  FROM erasure_ledger "
    "  WHERE (CAST(:since AS timestamptz) IS NULL OR decided_at >= :since) "
    "  AND (CAST(:clinic AS uuid) IS NULL OR clinic_id = :clinic) "
    "  ORDER BY clinic_id, patient_id, decided_at DESC, id DESC) l "
    "WHERE EXISTS (SELECT 1 FROM patients p WHERE p.clinic_id = l.clinic_id "
    "            AND p.id = l.patient_id AND CASE l.outcome "
    "              WHEN 'blocked' THEN p.blocked_at IS NULL AND p.anonymized_at IS NULL "
    "              ELSE p.anonymized_at IS NULL END) "
    "ORDER BY l.decided_at")


class SqlErasureRepository(SqlRepository):
    __slots__ = ()

    def facts(self, patient_id: uuid.UUID) -> PatientFacts:
        return self.facts_many([patient_id])[patient_id]

    def facts_many(self, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, PatientFacts]:
        """What the engine needs to know of each patient, in one statement; ``NotFound``
        when one of them is not the clinic's."""
        rows = self._execute(FACTS, {"clinic": self.clinic_id, "ids": list(patient_ids)})
        found = {row.id: PatientFacts(has_clinical_record=bool(row.clinical),
                                      has_consent_records=bool(row.consents)) for row in rows}
        for patient_id in patient_ids:
            if patient_id not in found:
                raise NotFound("patient", patient_id)
        return found

    def apply(self, patient_id: uuid.UUID, decisions: list[Decision], *,
              unblock: bool = False) -> None:
        self.apply_many([patient_id], decisions, unblock=unblock)

    def apply_many(self, patient_ids: Sequence[uuid.UUID], decisions: list[Decision], *,
                   unblock: bool = False) -> None:
        """Carry out the same decisions for each of ``patient_ids`` (set-based: a statement
        per table, whatever the number of patients); ``unblock`` when an expired hold gives
        the rows back (anonymized, so no longer personal data)."""
        ids = list(patient_ids)
        if not ids:
            return
        now = datetime.now(UTC)
        blocked = any(d.action is Action.BLOCK for d in decisions)
        changes = patient_changes(decisions)
        # the version advances: a correction prepared from the record as it was read before
        # the erasure is stale (and the database refuses it anyway: erasure_sql)
        changes.update(right_to_forget_requested_at=now, updated_by=self._uow.actor.id,
                       version=P.version + 1)
        mine = {"clinic": self.clinic_id, "ids": ids}
        if not blocked:
            changes.update(anonymized_at=now, is_active=False)
            if unblock:
                changes["blocked_at"] = None
            # nothing took place: the bookings go; their free text with them
            self._execute(delete(APPOINTMENTS).where(
                A.clinic_id == bindparam("clinic"), A.patient_id == any_(IDS)), mine)
        # proof of consent is kept, the channel's identifiers (address, device) are not: the
        # ledger is append-only, and this one change goes through its narrow, audited
        # function
        self._execute(REMOVE_EVIDENCE, {"patients": ids, "ids": [], "reason": "erasure"})
        if blocked:
            # a booking still to come will not take place: cancelled, it gives the
            # professional's time back (hidden by the block, it held the slot invisibly)
            self._execute(update(APPOINTMENTS).where(
                A.clinic_id == bindparam("clinic"), A.patient_id == any_(IDS),
                A.status.in_([s.value for s in ACTIVE_APPOINTMENT_STATUSES]),
                A.end_time > now,
            ).values(status=AppointmentStatus.CANCELLED.value, cancelled_at=now,
                     cancelled_by=self._uow.actor.id,
                     cancellation_reason=CancellationReason.CLINIC.value), mine)
            self._execute(update(APPOINTMENTS).where(
                A.clinic_id == bindparam("clinic"), A.patient_id == any_(IDS),
            ).values(blocked_at=now, version=A.version + 1), mine)
            changes["blocked_at"] = now
        self._execute(update(PATIENTS).where(
            and_(P.clinic_id == bindparam("clinic"), P.id == any_(IDS))).values(**changes), mine)

    def record(self, patient_id: uuid.UUID, decisions: list[Decision], outcome: str,
               request_id: uuid.UUID | None) -> uuid.UUID:
        return self.record_many([(patient_id, decisions, outcome)], request_id)[0]

    def record_many(self, entries: Sequence[tuple[uuid.UUID, list[Decision], str]],
                    request_id: uuid.UUID | None = None) -> list[uuid.UUID]:
        """One erasure-ledger row per (patient, decisions, outcome), in one statement."""
        ids = [uuid.uuid4() for _ in entries]
        if not entries:
            return ids
        kinds: dict[tuple[str, tuple[Decision, ...]], int] = {}
        rows = []
        for entry, (patient_id, decisions, outcome) in zip(ids, entries, strict=True):
            kind = kinds.setdefault((outcome, tuple(decisions)), len(kinds))
            rows.append((str(entry), str(patient_id), kind))
        self._execute(INSERT_LEDGER, {
            "clinic": self.clinic_id, "request": request_id, "actor": self._uow.actor.id,
            "entries": json.dumps(rows),
            "kinds": json.dumps([[outcome, {
                d.category.value: {"action": d.action.value,
                                   "legal_reference": d.legal_reference}
                for d in decisions}] for outcome, decisions in kinds]),
        })
        return ids

    def is_request_of(self, request_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
        """Whether ``request_id`` is a data-subject request of the patient, in this clinic."""
        return self._execute(REQUEST_OF_PATIENT, {
            "clinic": self.clinic_id, "request": request_id,
            "patient": patient_id}).first() is not None

    def has_entry(self, patient_id: uuid.UUID) -> bool:
        return self._execute(HAS_ENTRY, {"clinic": self.clinic_id,
                                         "patient": patient_id}).first() is not None

    def decisions_for_request(self, request_id: uuid.UUID) -> list[Decision] | None:
        found = self._execute(FOR_REQUEST, {"clinic": self.clinic_id,
                                            "request": request_id}).scalar_one_or_none()
        return from_ledger(found) if found is not None else None

    def is_blocked(self, patient_id: uuid.UUID) -> bool | None:
        """Whether the clinic's patient is blocked (None: no such patient); the legal-hold
        login sees blocked rows, the others do not."""
        blocked: bool | None = self._execute(IS_BLOCKED, {
            "clinic": self.clinic_id, "patient": patient_id}).scalar_one_or_none()
        return blocked

    def to_reapply(self, since: datetime | None = None,
                   clinic_id: uuid.UUID | None = None) -> list[LedgerDecision]:
        """Each patient's latest ledger decision (at or after ``since``, in ``clinic_id`` or
        every clinic: a service unit of work) whose row is not erased as it says."""
        return [LedgerDecision(r.clinic_id, r.patient_id, r.outcome) for r in self._execute(
            TO_REAPPLY, {"since": since, "clinic": clinic_id})]
