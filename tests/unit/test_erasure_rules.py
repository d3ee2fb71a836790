"""Erasure and the legal-hold read against in-memory fakes: what the law decides for each
patient, the audit event per decision, the ledger, a request that is no grounds, who may
read a held record and how the read is audited, and re-applying the ledger after a
restore."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.erasure import PatientFacts
from neonpro.domain.errors import Forbidden, NotBlocked, NotFound, ValidationFailed
from neonpro.domain.schemas.dsr import DataSubjectRequestRead
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import AuditAction, RiskLevel
from neonpro.services import erasure
from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes_erasure import FakeSealer, FakeUnits

CLINIC = uuid.uuid4()
DPO = Actor(uuid.uuid4(), "dpo")
ADMIN = Actor(uuid.uuid4(), "admin")
REASON = "court order 123/2026"
CLINICAL = PatientFacts(has_clinical_record=True, has_consent_records=False)


@pytest.fixture
def units() -> FakeUnits:
    return FakeUnits()


def _patient(units: FakeUnits, facts: PatientFacts | None = None) -> uuid.UUID:
    patient = FakeUnitOfWork(ADMIN, CLINIC, store=units.store).patients.add(
        PatientCreate(full_name="Ana"))
    if facts is not None:
        units.store["erasure_facts"][patient.id] = facts
    return patient.id


def _events(units: FakeUnits, action: AuditAction | None = None) -> list[dict[str, Any]]:
    return [e for _, uow in units.opened for e in uow.audit.events
            if uow.commits and (action is None or e["action"] == action)]


def _row(units: FakeUnits, patient_id: uuid.UUID) -> Any:
    return units.store["patients"][patient_id]


def test_a_clinical_record_is_blocked_each_decision_audited_and_ledgered(
        units: FakeUnits) -> None:
    patient = _patient(units, CLINICAL)
    done = erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), patient)
    assert done.outcome == "blocked"
    assert _row(units, patient).blocked_at is not None
    assert _row(units, patient).anonymized_at is None
    events = _events(units)
    # one event per decision that changes something (kept categories are not events)
    changing = [d for d in done.decisions if d.action.value != "keep"]
    assert len(events) == len(changing)
    assert {e["details"]["legal_reference"] for e in events} == {
        d.legal_reference for d in changing}
    assert all(e["patient_id"] == patient and e["risk"] is RiskLevel.MEDIUM for e in events)
    [entry] = units.store["erasure_ledger"].values()
    assert (entry.patient_id, entry.outcome) == (patient, "blocked")
    assert list(units.store["erasure_ledger"]) == [done.ledger_id]


def test_nothing_clinical_is_anonymized(units: FakeUnits) -> None:
    patient = _patient(units)
    assert erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), patient).outcome == \
        "anonymized"
    assert _row(units, patient).anonymized_at is not None
    assert _row(units, patient).blocked_at is None


def test_an_expired_hold_anonymizes_and_unblocks(units: FakeUnits) -> None:
    patient = _patient(units, CLINICAL)
    erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), patient)
    with units.admin_uow(CLINIC, ADMIN) as uow:
        assert erasure.erase_in(uow, patient, hold_expired=True).outcome == "anonymized"
        uow.commit()
    assert _row(units, patient).blocked_at is None
    assert _row(units, patient).anonymized_at is not None


def test_another_patients_request_is_no_grounds(units: FakeUnits) -> None:
    patient, other = _patient(units), _patient(units)
    request = DataSubjectRequestRead.model_construct(id=uuid.uuid4(), clinic_id=CLINIC,
                                                     patient_id=other)
    units.store.setdefault("data_subject_requests", {})[request.id] = request
    with pytest.raises(ValidationFailed, match="request_id"):
        erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), patient, request.id)
    assert units.store["erasure_ledger"] == {}
    assert _row(units, patient).anonymized_at is None
    done = erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), other, request.id)
    assert units.store["erasure_ledger"][done.ledger_id].request_id == request.id


def test_the_plan_changes_nothing(units: FakeUnits) -> None:
    patient = _patient(units, CLINICAL)
    plan = erasure.plan_erasure(units.uow(CLINIC, DPO), patient)
    assert {d.action.value for d in plan} >= {"block"}
    assert _row(units, patient).blocked_at is None
    assert units.store["erasure_ledger"] == {}
    with pytest.raises(NotFound):
        erasure.plan_erasure(units.uow(uuid.uuid4(), DPO), patient)


@pytest.mark.parametrize("role", ["receptionist", "professional", "system"])
def test_only_a_dpo_or_an_admin_reads_a_held_record(units: FakeUnits, role: str) -> None:
    patient = _patient(units, CLINICAL)
    erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), patient)
    opened = len(units.opened)
    with pytest.raises(Forbidden):
        erasure.legal_hold_read(units, FakeSealer(), CLINIC, patient,
                                Actor(uuid.uuid4(), role), REASON)
    assert [flavour for flavour, _ in units.opened[opened:]] == ["uow"]  # no legal hold


@pytest.mark.parametrize("reason", [None, "", "   ", "too short", "x" * 1001])
def test_a_held_read_needs_a_stated_justification(units: FakeUnits,
                                                  reason: str | None) -> None:
    patient = _patient(units, CLINICAL)
    erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), patient)
    with pytest.raises(ValidationFailed, match="justification"):
        erasure.legal_hold_read(units, FakeSealer(), CLINIC, patient, DPO, reason)
    assert _events(units, AuditAction.LEGAL_HOLD_READ) == []


def test_only_a_blocked_record_is_read_under_the_hold(units: FakeUnits) -> None:
    plain = _patient(units)
    with pytest.raises(NotBlocked):
        erasure.legal_hold_read(units, FakeSealer(), CLINIC, plain, DPO, REASON)
    with pytest.raises(NotFound):
        erasure.legal_hold_read(units, FakeSealer(), CLINIC, uuid.uuid4(), DPO, REASON)
    assert _events(units, AuditAction.LEGAL_HOLD_READ) == []


def test_the_held_read_is_audited_with_the_justification_sealed(units: FakeUnits) -> None:
    patient = _patient(units, CLINICAL)
    erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), patient)
    sealer = FakeSealer()
    held = erasure.legal_hold_read(units, sealer, CLINIC, patient, DPO, f"  {REASON}  ")
    assert held.patient.id == patient
    [event] = _events(units, AuditAction.LEGAL_HOLD_READ)
    assert (event["risk"], event["patient_id"]) == (RiskLevel.HIGH, patient)
    assert REASON not in str(event["details"])  # never in clear
    assert erasure.reveal_justification(sealer, event["details"]) == REASON
    # the read is audited before the record is read: its unit of work came first
    flavours = [f for f, _ in units.opened[-3:]]
    assert flavours == ["legal_hold_uow", "uow", "legal_hold_uow"]


def test_the_ledger_is_reapplied_once_to_records_that_came_back(units: FakeUnits) -> None:
    blocked, anonymized, untouched = (_patient(units, CLINICAL), _patient(units),
                                      _patient(units))
    erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), blocked)
    erasure.erase_patient(units.admin_uow(CLINIC, ADMIN), anonymized)
    for patient in (blocked, anonymized):  # a restore brings the rows back unerased
        units.store["patients"][patient] = _row(units, patient).model_copy(
            update={"blocked_at": None, "anonymized_at": None})
    assert erasure.reapply_erasures(units, ADMIN, clinic_id=CLINIC) == 2
    assert _row(units, blocked).blocked_at is not None  # a block stays a block
    assert _row(units, blocked).anonymized_at is None
    assert _row(units, anonymized).anonymized_at is not None
    assert _row(units, untouched).anonymized_at is None
    restored = _events(units, AuditAction.RESTORE)
    assert {e["patient_id"] for e in restored} == {blocked, anonymized}
    assert erasure.reapply_erasures(units, ADMIN, clinic_id=CLINIC) == 0
    assert erasure.reapply_erasures(units, ADMIN, clinic_id=uuid.uuid4()) == 0
