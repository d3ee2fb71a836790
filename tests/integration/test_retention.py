"""The retention engine: law-bounded, batched, idempotent, audited."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import BelowLegalFloor, Forbidden
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose
from neonpro.services import clinics, consents, patients, retention
from tests.sessions import service_session, tenant_session
from tests.valid import cns, cpf

JOB = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000f1"), "system")


@pytest.fixture
def clinic(container: Container) -> uuid.UUID:
    cid = clinics.create_clinic(container.service_uow(JOB), ClinicCreate(name="Ret")).id
    with service_session(container.database, JOB.id) as s:
        for category, trigger, period, action in (
            ("identification", "inactivity", "365 days", "anonymize"),
            ("clinical", "last_clinical_entry", "20 years", "anonymize"),
            ("marketing", "consent_revoked", "30 days", "delete"),
        ):
            s.execute(text(
                "INSERT INTO retention_policies (clinic_id, data_category, trigger, period, "
                "action, legal_reference) VALUES (:c, :cat, :t, CAST(:p AS interval), :a, "
                "'LGPD Art. 15-16')"), {"c": cid, "cat": category, "t": trigger, "p": period,
                                         "a": action})
    return cid


def test_policies_apply_within_the_law_and_only_once(container: Container,
                                                     clinic: uuid.UUID) -> None:
    plain = patients.register_patient(container.uow(clinic, JOB),
                                      PatientCreate(full_name="Sem Prontuario")).id
    clinical = patients.register_patient(container.uow(clinic, JOB), PatientCreate(
        full_name="Com Prontuario", patient_notes="diabetes")).id
    grant = consents.grant_consent(container.uow(clinic, JOB), ConsentCreate(
        patient_id=plain, purpose=ConsentPurpose.MARKETING, terms_version="m",
        terms_hash="d" * 64, collection_method=CollectionMethod.ONLINE_FORM,
        evidence={"ip": "203.0.113.5"}))
    consents.revoke_consent(container.uow(clinic, JOB), grant.id)

    assert retention.plan_retention(container, JOB, clinic) == []  # nothing is due today
    in_two_years = datetime.now(UTC) + timedelta(days=730)
    plan = retention.plan_retention(container, JOB, clinic, now=in_two_years)
    targets = {(i.trigger, i.target) for i in plan}
    assert ("inactivity", plain) in targets
    assert ("inactivity", clinical) in targets
    assert sum(1 for i in plan if i.trigger == "consent_revoked") == 1
    report = retention.apply_retention(container, JOB, plan, batch=2)
    assert report.applied == len(plan)
    assert report.by_outcome["anonymized"] == 1
    assert report.by_outcome["blocked"] == 1  # the hold turns "anonymize" into a block
    assert retention.plan_retention(container, JOB, clinic, now=in_two_years) == []

    in_21_years = datetime.now(UTC) + timedelta(days=21 * 366)
    expired = retention.plan_retention(container, JOB, clinic, now=in_21_years)
    assert [(i.trigger, i.target) for i in expired] == [("last_clinical_entry", clinical)]
    retention.apply_retention(container, JOB, expired)
    with container.uow(clinic, JOB) as tx:
        back = tx.patients.get(clinical)  # anonymized and no longer blocked
    assert back.full_name == "Paciente anonimizado"
    assert back.patient_notes is None
    with service_session(container.database, JOB.id) as s:
        runs = s.execute(text("SELECT count(*) FROM audit_events WHERE clinic_id = :c "
                              "AND action = 'RETENTION'"), {"c": clinic}).scalar_one()
        evidence = s.execute(text("SELECT evidence FROM consent_records WHERE clinic_id = :c "
                                  "AND status = 'revoked'"), {"c": clinic}).scalar_one()
    assert runs >= 2
    assert evidence == {"removed": "retention"}


def test_a_batch_erases_each_patient_with_its_own_decisions_events_and_ledger_entry(
    container: Container, clinic: uuid.UUID
) -> None:
    plain = [patients.register_patient(container.uow(clinic, JOB), PatientCreate(
        full_name=f"Sem Prontuario {n}", cpf=cpf(4100 + n), cns=cns(4100 + n))).id
        for n in range(3)]
    held = [patients.register_patient(container.uow(clinic, JOB), PatientCreate(
        full_name=f"Com Prontuario {n}", cpf=cpf(4200 + n), patient_notes="asma")).id
        for n in range(3)]
    in_two_years = datetime.now(UTC) + timedelta(days=730)
    plan = retention.plan_retention(container, JOB, clinic, now=in_two_years)
    assert sorted(i.target for i in plan) == sorted(plain + held)
    report = retention.apply_retention(container, JOB, plan, batch=4)  # 4 + 2, groups mixed
    assert report.applied == 6
    assert report.by_outcome == {"anonymized": 3, "blocked": 3}
    with service_session(container.database, JOB.id) as s:
        ledger = dict(s.execute(text(
            "SELECT patient_id, outcome FROM erasure_ledger WHERE clinic_id = :c"),
            {"c": clinic}).all())
        decisions = s.execute(text(
            "SELECT e.action, e.details FROM audit_events e WHERE e.clinic_id = :c "
            "AND e.resource_type = 'patient' AND e.resource_id = :p "
            "AND e.patient_ref = neonpro_patient_ref(CAST(:p AS uuid))"),
            {"c": clinic, "p": str(plain[0])}).all()
        rows = s.execute(text(
            "SELECT id, medical_record_number, cpf_encrypted, cpf_blind_index, "
            "cns_blind_index, blocked_at, anonymized_at FROM patients "
            "WHERE clinic_id = :c"), {"c": clinic}).all()
    assert ledger == {**dict.fromkeys(plain, "anonymized"), **dict.fromkeys(held, "blocked")}
    # every decision of the patient audited with its legal reference, one event each
    assert sorted(a for a, _ in decisions) == sorted(["ANONYMIZE"] * 2 + ["DELETE"] * 7)
    assert all(d["legal_reference"].startswith("LGPD Art.") for _, d in decisions)
    by_id = {r.id: r for r in rows}
    for pid in plain:  # identifiers, their ciphertexts and blind indexes gone
        row = by_id[pid]
        assert row.anonymized_at is not None
        assert row.blocked_at is None
        assert (row.cpf_encrypted, row.cpf_blind_index, row.cns_blind_index) == (None,) * 3
        assert row.medical_record_number.startswith("ANON-")
    assert len({by_id[p].medical_record_number for p in plain}) == 3  # unique per row
    assert all(by_id[p].blocked_at is not None and by_id[p].anonymized_at is None
               for p in held)
    assert retention.plan_retention(container, JOB, clinic, now=in_two_years) == []
    again = retention.apply_retention(container, JOB, [], batch=4)
    assert (again.applied, again.by_outcome) == (0, {})


def test_a_patient_due_under_two_policies_in_one_batch_is_erased_once(
    container: Container, clinic: uuid.UUID
) -> None:
    held = patients.register_patient(container.uow(clinic, JOB), PatientCreate(
        full_name="Duas Politicas", cpf=cpf(4301), patient_notes="asma")).id
    in_two_years = datetime.now(UTC) + timedelta(days=730)
    plan = retention.plan_retention(container, JOB, clinic, now=in_two_years)
    [item] = [i for i in plan if i.target == held]
    # the same patient, also due because the 20-year hold ran out (a second policy)
    expired = dataclasses.replace(item, trigger="last_clinical_entry", action="anonymize")
    report = retention.apply_retention(container, JOB, [item, expired], batch=10)
    assert report.applied == 2
    with service_session(container.database, JOB.id) as s:
        ledger = s.execute(text("SELECT outcome FROM erasure_ledger WHERE patient_id = :p"),
                           {"p": held}).scalars().all()
        anonymized = s.execute(text("SELECT anonymized_at IS NOT NULL FROM patients "
                                    "WHERE id = :p"), {"p": held}).scalar_one()
    assert ledger == ["anonymized"]  # one erasure, the expired hold's
    assert anonymized is True


def test_policies_keep_their_history_whoever_writes_sql(
    container: Container, clinic: uuid.UUID
) -> None:
    """A policy is retired, never changed nor deleted: as the application role (through
    row-level security) and as the service role, raw SQL is refused by the guard."""
    admin = Actor(uuid.uuid4(), "admin")
    policy = retention.create_policy(container.uow(clinic, admin), retention.PolicyCreate(
        data_category="contact", trigger="inactivity", action="delete", period_days=400,
        legal_reference="LGPD art. 16"))
    changes = (
        "UPDATE retention_policies SET period = interval '1 day' WHERE id = :p",
        "UPDATE retention_policies SET action = 'keep', retired_at = now(), "
        "retired_by = :a WHERE id = :p",
        "DELETE FROM retention_policies WHERE id = :p",
    )
    sessions = (lambda: tenant_session(container.database, clinic, admin.id, "admin"),
                lambda: service_session(container.database, admin.id, "admin"))
    for session in sessions:
        for statement in changes:
            with pytest.raises(DBAPIError, match=r"history|permission denied"), session() as s:
                s.execute(text(statement), {"p": policy.id, "a": admin.id})
    with tenant_session(container.database, clinic, admin.id, "admin") as s:
        s.execute(text("UPDATE retention_policies SET retired_at = now(), retired_by = :a "
                       "WHERE id = :p"), {"p": policy.id, "a": admin.id})
    with pytest.raises(DBAPIError, match="history"), \
            service_session(container.database, admin.id, "admin") as s:
        s.execute(text("UPDATE retention_policies SET retired_at = now() WHERE id = :p"),
                  {"p": policy.id})
    [row] = [p for p in retention.list_policies(container.uow(clinic, admin),
                                                include_retired=True) if p.id == policy.id]
    assert (row.period_days, row.action, row.retired_by) == (400, "delete", admin.id)


@pytest.mark.parametrize("role", ["receptionist", "professional", "system"])
def test_only_the_dpo_and_the_admin_manage_policies(
    container: Container, clinic: uuid.UUID, role: str
) -> None:
    intruder = Actor(uuid.uuid4(), role)
    data = retention.PolicyCreate(data_category="marketing", trigger="inactivity",
                                  action="delete", period_days=30, legal_reference="LGPD")
    with pytest.raises(Forbidden):
        retention.create_policy(container.uow(clinic, intruder), data)
    with pytest.raises(Forbidden):
        retention.list_policies(container.uow(clinic, intruder))
    with pytest.raises(Forbidden):
        retention.retire_policy(container.uow(clinic, intruder), uuid.uuid4())
    with service_session(container.database, JOB.id) as s:
        denied = s.execute(text(
            "SELECT count(*) FROM audit_events WHERE clinic_id = :c AND actor_id = :a "
            "AND action = 'PERMISSION_DENIED'"), {"c": clinic, "a": intruder.id}).scalar_one()
    assert denied == 3


def test_a_clinical_policy_below_twenty_years_is_refused(
    container: Container, clinic: uuid.UUID
) -> None:
    dpo = Actor(uuid.uuid4(), "dpo")
    for days in (0, 7200, 7304):
        with pytest.raises(BelowLegalFloor, match="20 years"):
            retention.create_policy(container.uow(clinic, dpo), retention.PolicyCreate(
                data_category="clinical", trigger="inactivity", action="block",
                period_days=days, legal_reference="Lei 13.787/2018 art. 6"))
