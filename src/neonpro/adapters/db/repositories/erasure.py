"""Carrying out erasure decisions in SQL, driven by the models' LGPD column declarations.

Each personal-data column says its category and its anonymization rule (``pii()`` in the
models); a category's decision (delete, anonymize, block, keep) picks what happens to it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Column, Table, delete, func, insert, select, text, update

from neonpro.adapters.db.models import Appointment, ConsentRecord, ErasureLedgerEntry, Patient
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.erasure import Action, Decision, PatientFacts
from neonpro.domain.errors import NotFound
from neonpro.domain.vocabulary import AnonymizationRule

PATIENTS = cast(Table, Patient.__table__)
APPOINTMENTS = cast(Table, Appointment.__table__)
CONSENTS = cast(Table, ConsentRecord.__table__)
LEDGER = cast(Table, ErasureLedgerEntry.__table__)
P, A = PATIENTS.c, APPOINTMENTS.c
TOOK_PLACE = ("in_progress", "completed", "no_show")
ANONYMOUS_NAME = "Paciente anonimizado"


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
            return func.date_trunc("year", column).cast(column.type)
        if column.name == "postal_code":
            return func.left(column, 5) + "000"
        return _erased(column)
    if rule is AnonymizationRule.REPLACE:
        if column.name == "full_name":
            return ANONYMOUS_NAME
        if column.name == "medical_record_number":
            return "ANON-" + uuid.uuid4().hex[:12].upper()
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


class SqlErasureRepository(SqlRepository):
    __slots__ = ()

    def facts(self, patient_id: uuid.UUID) -> PatientFacts:
        row = self._execute(select(
            P.id, P.patient_notes_encrypted.is_not(None).label("notes"),
            (func.cardinality(P.allergies) + func.cardinality(P.chronic_conditions)
             + func.cardinality(P.current_medications)).label("lists"),
            P.blood_type.is_not(None).label("blood"),
        ).where(P.clinic_id == self.clinic_id, P.id == patient_id)).first()
        if row is None:
            raise NotFound("patient", patient_id)
        took_place = self._execute(select(func.count()).select_from(APPOINTMENTS).where(
            A.clinic_id == self.clinic_id, A.patient_id == patient_id,
            (A.status.in_(TOOK_PLACE)) | A.clinical_notes_encrypted.is_not(None),
        )).scalar_one()
        consents = self._execute(select(func.count()).select_from(CONSENTS).where(
            CONSENTS.c.clinic_id == self.clinic_id, CONSENTS.c.patient_id == patient_id,
        )).scalar_one()
        clinical = bool(row.notes or row.lists or row.blood or took_place)
        return PatientFacts(has_clinical_record=clinical, has_consent_records=consents > 0)

    def apply(self, patient_id: uuid.UUID, decisions: list[Decision], *,
              unblock: bool = False) -> None:
        """Carry out the decisions; ``unblock`` when an expired hold gives the row back
        (anonymized, so no longer personal data)."""
        now = datetime.now(UTC)
        blocked = any(d.action is Action.BLOCK for d in decisions)
        changes = patient_changes(decisions)
        changes.update(right_to_forget_requested_at=now, updated_by=self._uow.actor.id)
        if not blocked:
            changes.update(anonymized_at=now, is_active=False)
            if unblock:
                changes["blocked_at"] = None
            # nothing took place: the bookings go; their free text with them
            self._execute(delete(APPOINTMENTS).where(
                A.clinic_id == self.clinic_id, A.patient_id == patient_id))
        # proof of consent is kept, the channel's identifiers (address, device) are not
        self._execute(update(CONSENTS).where(
            CONSENTS.c.clinic_id == self.clinic_id, CONSENTS.c.patient_id == patient_id,
        ).values(evidence={"removed": "erasure"}))
        if blocked:
            self._execute(update(APPOINTMENTS).where(
                A.clinic_id == self.clinic_id, A.patient_id == patient_id,
            ).values(blocked_at=now))
            changes["blocked_at"] = now
        self._execute(update(PATIENTS).where(
            P.clinic_id == self.clinic_id, P.id == patient_id).values(**changes))

    def record(self, patient_id: uuid.UUID, decisions: list[Decision], outcome: str,
               request_id: uuid.UUID | None) -> uuid.UUID:
        entry = uuid.uuid4()
        self._execute(insert(LEDGER).values(
            clinic_id=self.clinic_id, id=entry, patient_id=patient_id, request_id=request_id,
            decided_by=self._uow.actor.id, outcome=outcome,
            decisions=json.loads(json.dumps({
                d.category.value: {"action": d.action.value, "legal_reference": d.legal_reference}
                for d in decisions})),
        ))
        return entry

