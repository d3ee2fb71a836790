"""Migrations: empty -> head -> base -> head on a real PostgreSQL, and no drift at head."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import migrate, schema_check
from neonpro.adapters.db.audit import seal_pending, verify_chains
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import ConsentRequired
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import (
    CollectionMethod,
    ConsentPurpose,
    DataCategory,
    RetentionAction,
    RetentionTrigger,
)
from neonpro.services import clinics, consents, patients, retention
from tests.conftest import make_keyring, make_settings


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )).scalars()
        out = set(rows)
    engine.dispose()
    return out


def test_round_trip_empty_head_base_head(fresh_database_url: str, roles: Roles) -> None:
    url = fresh_database_url
    assert migrate.current_revisions(url) == ()
    migrate.upgrade(url, roles)
    assert migrate.revisions(url).at_head
    assert set(Base.metadata.tables) <= _tables(url)

    migrate.downgrade(url, roles, "base")
    assert migrate.current_revisions(url) == ()
    assert _tables(url) <= {"alembic_version"}

    migrate.upgrade(url, roles)
    assert migrate.revisions(url).at_head
    assert set(Base.metadata.tables) <= _tables(url)


def test_downgrade_keeps_the_cluster_wide_roles(fresh_database_url: str, roles: Roles) -> None:
    migrate.upgrade(fresh_database_url, roles)
    migrate.downgrade(fresh_database_url, roles, "base")
    engine = create_engine(fresh_database_url, poolclass=NullPool)
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT rolname FROM pg_roles")).scalars())
    engine.dispose()
    assert {roles.owner, roles.app, roles.service} <= names


def test_upgrade_twice_is_a_no_op(fresh_database_url: str, roles: Roles) -> None:
    migrate.upgrade(fresh_database_url, roles)
    before = schema_check.read_snapshot(fresh_database_url)
    migrate.upgrade(fresh_database_url, roles)
    assert schema_check.read_snapshot(fresh_database_url) == before


def test_no_drift_at_head(admin_url: str, roles: Roles) -> None:
    report = schema_check.check_drift(admin_url, roles)
    assert report.clean, "\n".join(report.lines())


@pytest.fixture
def drifted_security(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pretend the code now expects a policy, a grant and a trigger the migrations lack."""
    original = schema_check.expected_ddl

    def drifted(metadata: object, roles: Roles) -> list[str]:
        statements = [
            s.replace(
                "CREATE POLICY patients_tenant_delete ON patients AS PERMISSIVE FOR DELETE",
                "CREATE POLICY patients_tenant_delete ON patients AS RESTRICTIVE FOR DELETE",
            )
            for s in original(metadata, roles)  # type: ignore[arg-type]
            if s != f"GRANT SELECT, INSERT, UPDATE, DELETE ON data_subject_requests TO {roles.service}"
        ]
        statements.append(
            "CREATE TRIGGER clinics_extra BEFORE DELETE ON clinics "
            "FOR EACH ROW EXECUTE FUNCTION neonpro_refuse_change()"
        )
        return statements

    monkeypatch.setattr(schema_check, "expected_ddl", drifted)
    return


@pytest.mark.usefixtures("drifted_security")
def test_drift_in_policies_grants_and_triggers_is_named(admin_url: str, roles: Roles) -> None:
    report = schema_check.check_drift(admin_url, roles)
    assert not report.clean
    text_report = "\n".join(report.lines())
    assert "policy patients patients_tenant_delete" in text_report
    assert f"grant data_subject_requests {roles.service} DELETE" in text_report
    assert "trigger clinics clinics_extra" in text_report


def test_drift_in_a_check_constraint_is_named(
    admin_url: str, roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = schema_check.build_from_models

    def with_extra_column(url: str, r: Roles) -> None:
        original(url, r)
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text(f'SET LOCAL ROLE "{r.owner}"'))
            conn.execute(text(
                "ALTER TABLE service_types ADD CONSTRAINT ck_service_types_extra "
                "CHECK (duration_minutes < 1000)"
            ))
        engine.dispose()

    monkeypatch.setattr(schema_check, "build_from_models", with_extra_column)
    report = schema_check.check_drift(admin_url, roles)
    assert any("ck_service_types_extra" in line for line in report.only_in_models)


def test_0012_numbers_the_ledger_and_recomputes_summaries(fresh_database_url: str,
                                                          roles: Roles) -> None:
    """A database of 0011 where marketing was granted twice and the newest grant revoked
    (its summary then read given|m-v1) reads withdrawn after 0012; existing rows are
    numbered in their purpose's order."""
    url = fresh_database_url
    migrate.upgrade(url, roles, "0011")
    me = Actor(uuid.uuid4(), "admin")
    box = Container(make_settings(url), database_url=url, keyring=make_keyring())
    try:
        clinic = clinics.create_clinic(box.service_uow(me), ClinicCreate(name="Old")).id
        pid = patients.register_patient(box.uow(clinic, me), PatientCreate(full_name="P")).id
        granted = [consents.grant_consent(box.uow(clinic, me), ConsentCreate(
            patient_id=pid, purpose=ConsentPurpose.MARKETING, terms_version=v,
            terms_hash=hashlib.sha256(b"t").hexdigest(),
            collection_method=CollectionMethod.WRITTEN)).id for v in ("m-v1", "m-v2")]
        revoked = consents.revoke_consent(box.uow(clinic, me), granted[1]).id
        with box.uow(clinic, me) as tx:
            assert tx.patients.get(pid).data_consent_status == "given"  # the old rule
        # some ledger rows sealed before the upgrade: the rewrite keeps their chain valid
        assert seal_pending(box.database, box.keyring, me, clinic) > 0
        migrate.upgrade(url, roles, audit_key=box.keyring.active_audit_key)
        seal_pending(box.database, box.keyring, me, clinic)
        reports = verify_chains(box.database, me, box.keyring, clinic)
        assert {r.chain for r in reports} >= {"audit_events", "consent_records"}
        assert all(r.ok for r in reports), [r for r in reports if not r.ok]
        with box.uow(clinic, me) as tx:
            patient = tx.patients.get(pid)
            order = tx.connection.execute(text(
                "SELECT id FROM consent_records WHERE clinic_id = :c ORDER BY entry_no"),
                {"c": clinic}).scalars().all()
        assert (patient.data_consent_status, patient.data_consent_version) == (
            "withdrawn", None)
        assert order == [*granted, revoked]
        with pytest.raises(ConsentRequired), box.uow(clinic, me) as tx:
            consents.require_consent(tx, pid, ConsentPurpose.MARKETING)
        # a downgrade puts every summary back on the rule of the gate below it, and an
        # upgrade again on the latest decision
        migrate.downgrade(url, roles, "0011")
        with box.uow(clinic, me) as tx:
            patient = tx.patients.get(pid)
        assert (patient.data_consent_status, patient.data_consent_version) == (
            "given", "m-v1")
        migrate.upgrade(url, roles, audit_key=box.keyring.active_audit_key)
        with box.uow(clinic, me) as tx:
            assert tx.patients.get(pid).data_consent_status == "withdrawn"
        again = consents.grant_consent(box.uow(clinic, me), ConsentCreate(
            patient_id=pid, purpose=ConsentPurpose.MARKETING, terms_version="m-v3",
            terms_hash=hashlib.sha256(b"t").hexdigest(),
            collection_method=CollectionMethod.WRITTEN))
        with box.uow(clinic, me) as tx:
            assert tx.patients.get(pid).data_consent_version == "m-v3"
            assert tx.consents.state(pid, ConsentPurpose.MARKETING).decision_id == again.id
        migrate.downgrade(url, roles, "0011")
        migrate.upgrade(url, roles, audit_key=box.keyring.active_audit_key)
    finally:
        box.close(seal=False)


def test_0013_downgrade_drops_retired_policies_as_the_owner(fresh_database_url: str,
                                                           roles: Roles) -> None:
    """Below 0013 a policy is one row per category and trigger: the retired one goes (the
    table forces row-level security, so the owner's DELETE must not silently find none)."""
    url = fresh_database_url
    migrate.upgrade(url, roles)
    me = Actor(uuid.uuid4(), "admin")
    box = Container(make_settings(url), database_url=url, keyring=make_keyring())
    try:
        clinic = clinics.create_clinic(box.service_uow(me), ClinicCreate(name="Politicas")).id
        policy = retention.PolicyCreate(data_category=DataCategory.MARKETING,
                                        trigger=RetentionTrigger.INACTIVITY,
                                        action=RetentionAction.DELETE, period_days=30,
                                        legal_reference="LGPD art. 16")
        first = retention.create_policy(box.uow(clinic, me), policy)
        retention.retire_policy(box.uow(clinic, me), first.id)
        kept = retention.create_policy(box.uow(clinic, me), policy)
        migrate.downgrade(url, roles, "0012")
        with box.uow(clinic, me) as tx:
            left = tx.connection.execute(text(
                "SELECT id FROM retention_policies WHERE clinic_id = :c"),
                {"c": clinic}).scalars().all()
        assert left == [kept.id]
        migrate.upgrade(url, roles, audit_key=box.keyring.active_audit_key)
    finally:
        box.close(seal=False)
