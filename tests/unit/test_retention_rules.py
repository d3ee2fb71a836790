"""The retention engine and its policies against in-memory fakes: who manages policies,
the legal floors, one active policy per category and trigger, retiring once, what a plan
says and why, and how a plan is carried out (a patient due twice is erased once, an
expired hold anonymizes, revoked consents lose their channel identifiers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.erasure import PatientFacts
from neonpro.domain.errors import BelowLegalFloor, Conflict, Forbidden, NotFound
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import AuditAction
from neonpro.services import retention
from neonpro.services.retention import PolicyCreate, RetentionItem
from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes_erasure import FakeUnits

CLINIC = uuid.uuid4()
DPO = Actor(uuid.uuid4(), "dpo")
JOB = Actor(uuid.uuid4(), "system")
NOW = datetime(2031, 5, 2, tzinfo=UTC)
INACTIVE = PolicyCreate(data_category="identification", trigger="inactivity",
                        action="anonymize", period_days=730, legal_reference="LGPD Art. 16")
CLINICAL = PolicyCreate(data_category="clinical", trigger="last_clinical_entry",
                        action="anonymize", period_years=20,
                        legal_reference="Lei 13.787/2018 Art. 6")
REVOKED = PolicyCreate(data_category="marketing", trigger="consent_revoked", action="delete",
                       period_days=365, legal_reference="LGPD Art. 16")


@pytest.fixture
def units() -> FakeUnits:
    return FakeUnits()


def _uow(units: FakeUnits, actor: Actor = DPO) -> FakeUnitOfWork:
    return units.uow(CLINIC, actor)


@pytest.mark.parametrize("role", ["receptionist", "professional", "system"])
def test_only_an_admin_or_the_dpo_manages_policies(units: FakeUnits, role: str) -> None:
    actor = Actor(uuid.uuid4(), role)
    with pytest.raises(Forbidden):
        retention.create_policy(_uow(units, actor), INACTIVE)
    with pytest.raises(Forbidden):
        retention.list_policies(_uow(units, actor))
    assert units.store["retention_policies"] == {}


def test_a_period_below_the_legal_floor_is_refused(units: FakeUnits) -> None:
    short = CLINICAL.model_copy(update={"period_years": 19})
    with pytest.raises(BelowLegalFloor):
        retention.create_policy(_uow(units), short)
    assert retention.create_policy(_uow(units), CLINICAL).period_days == 7305


def test_one_active_policy_per_category_and_trigger(units: FakeUnits) -> None:
    first = retention.create_policy(_uow(units), INACTIVE)
    [created] = _uow_events(units, AuditAction.CREATE)
    assert created["details"]["period_days"] == 730
    assert "legal_reference" not in created["details"]  # free text stays out of the trail
    with pytest.raises(Conflict):
        retention.create_policy(_uow(units), INACTIVE)
    retired = retention.retire_policy(_uow(units), first.id)
    assert not retired.active
    with pytest.raises(Conflict):
        retention.retire_policy(_uow(units), first.id)
    with pytest.raises(NotFound):
        retention.retire_policy(units.uow(uuid.uuid4(), DPO), first.id)
    second = retention.create_policy(_uow(units), INACTIVE)
    assert [p.id for p in retention.list_policies(_uow(units))] == [second.id]
    assert {p.id for p in retention.list_policies(_uow(units), include_retired=True)} == {
        first.id, second.id}


def _uow_events(units: FakeUnits, action: AuditAction) -> list[dict[str, object]]:
    return [e for _, uow in units.opened for e in uow.audit.events
            if uow.commits and e["action"] == action]


def _patient(units: FakeUnits, *, clinical: bool = False) -> uuid.UUID:
    patient = FakeUnitOfWork(DPO, CLINIC, store=units.store).patients.add(
        PatientCreate(full_name="Ana"))
    units.store["erasure_facts"][patient.id] = PatientFacts(
        has_clinical_record=clinical, has_consent_records=False)
    return patient.id


def test_the_plan_names_each_target_and_why_and_skips_retired_policies(
        units: FakeUnits) -> None:
    policy = retention.create_policy(_uow(units), INACTIVE)
    gone = retention.create_policy(_uow(units), REVOKED)
    retention.retire_policy(_uow(units), gone.id)
    patient = _patient(units)
    units.store["retention_due"].update({policy.id: [patient], gone.id: [uuid.uuid4()]})
    [item] = retention.plan_retention(units, JOB, CLINIC, now=NOW)
    assert (item.policy_id, item.target, item.reason) == (policy.id, patient,
                                                          "no activity for 730 days")
    assert units.store["patients"][patient].anonymized_at is None  # nothing changed
    assert retention.plan_retention(units, JOB, uuid.uuid4(), now=NOW) == []


def _item(policy: str, trigger: str, target: uuid.UUID, action: str = "anonymize",
          ) -> RetentionItem:
    return RetentionItem(CLINIC, uuid.uuid5(uuid.NAMESPACE_OID, policy), "identification",
                         trigger, action, "ref", target, "")


def test_a_plan_is_carried_out_in_audited_batches(units: FakeUnits) -> None:
    twice, held, expired = _patient(units), _patient(units, clinical=True), _patient(
        units, clinical=True)
    consent, kept = uuid.uuid4(), _patient(units)
    items = [_item("a", "inactivity", twice), _item("b", "inactivity", held),
             _item("c", "consent_revoked", consent, "delete"),
             _item("d", "inactivity", kept, "keep"),
             _item("e", "last_clinical_entry", expired),
             _item("f", "last_clinical_entry", twice)]
    ticks: list[tuple[int, int]] = []
    report = retention.apply_retention(units, JOB, items, batch=4,
                                       progress=lambda a, b: ticks.append((a, b)))
    assert (report.planned, report.applied, ticks) == (6, 6, [(4, 6), (6, 6)])
    assert report.by_outcome == {"anonymized": 3, "blocked": 1,
                                 "consent_evidence_removed": 1, "kept": 1}
    rows = units.store["patients"]
    assert (rows[held].blocked_at is None, rows[held].anonymized_at is None) == (False, True)
    assert (rows[expired].anonymized_at is None, rows[expired].blocked_at is None) == (
        False, True)
    assert rows[kept].anonymized_at is None
    assert units.store["evidence_removed"] == {consent: "retention"}
    # a patient due under two policies is erased once: one ledger entry each
    ledger = [e.patient_id for e in units.store["erasure_ledger"].values()]
    assert sorted(map(str, ledger)) == sorted(map(str, [twice, held, expired]))
    assert len(_uow_events(units, AuditAction.RETENTION)) == 2  # one per batch
    assert [f for f, _ in units.opened] == ["admin_uow", "admin_uow"]


def test_an_empty_plan_changes_nothing(units: FakeUnits) -> None:
    report = retention.apply_retention(units, JOB, [])
    assert (report.planned, report.applied, report.by_outcome) == (0, 0, {})
    assert units.opened == []


def test_expired_hold_wins_for_a_patient_due_twice_in_one_batch(units: FakeUnits) -> None:
    patient = _patient(units, clinical=True)
    retention.apply_retention(units, JOB, [_item("a", "inactivity", patient),
                                           _item("b", "last_clinical_entry", patient)])
    row = units.store["patients"][patient]
    assert (row.anonymized_at is None, row.blocked_at is None) == (False, True)
