"""Append-only ledgers: consent_records, disclosures, erasure_ledger, no_show_models (and the
chain's own tables). No role may update, delete or truncate them: the grants refuse the
application and the service role, guard triggers refuse everyone, owner included. The one
change the law requires (a consent's personal evidence, on erasure or retention) goes
through one audited function. The erasure ledger is chained and verified like the trail.

Adversaries: SQL on the application's or the service's login; the database owner.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import seal_pending, verify_chains
from neonpro.adapters.db.security import GUARDED_TABLES, Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import clinics, consents, erasure, patients
from tests.conftest import make_keyring, make_settings
from tests.sessions import service_session, tenant_session
from tests.tamper import as_owner, owner_url

DPO = Actor(uuid.UUID("00000000-0000-0000-0000-00000000d901"), "dpo")
LEDGERS = ("consent_records", "disclosures", "erasure_ledger", "no_show_models")


@pytest.fixture(scope="module")
def box(admin_url: str) -> Iterator[Container]:
    from tests.conftest import create_database, drop_database  # noqa: PLC0415

    url = create_database(admin_url, "ledgers")
    migrate.upgrade(url, Roles())
    container = Container(make_settings(url), database_url=url, keyring=make_keyring())
    try:
        yield container
    finally:
        container.close(seal=False)
        drop_database(admin_url, url)


@pytest.fixture(scope="module")
def world(box: Container) -> dict[str, uuid.UUID]:
    """A clinic with a consent (granted then revoked), a disclosure, an erased patient
    (ledger entry), a no-show model; everything sealed."""
    clinic = clinics.create_clinic(box.service_uow(DPO), ClinicCreate(name="Livros")).id
    patient = patients.register_patient(box.uow(clinic, DPO), PatientCreate(
        full_name="Maria Livro")).id
    erased = patients.register_patient(box.uow(clinic, DPO), PatientCreate(
        full_name="Joana Apagada")).id
    for pid in (patient, erased):
        consents.grant_consent(box.uow(clinic, DPO), ConsentCreate(
            patient_id=pid, purpose="marketing", legal_basis="consent", terms_version="v1",
            terms_hash="c" * 64, collection_method="digital_signature",
            evidence={"ip": "203.0.113.9", "device": "tablet-3"}))
    grant = consents.consent_history(box.uow(clinic, DPO), patient)[0]
    consents.revoke_consent(box.uow(clinic, DPO), grant.id)
    with box.admin_uow(clinic, DPO) as tx:
        tx.connection.execute(text(
            "INSERT INTO disclosures (clinic_id, patient_id, recipient_name, data_description, "
            "purpose, legal_basis) VALUES (:c, :p, 'Laboratório X', 'exames', 'análise', "
            "'health_protection')"), {"c": clinic, "p": patient})
        tx.connection.execute(text(
            "INSERT INTO no_show_models (clinic_id, version, kind, training_rows, "
            "training_no_shows) VALUES (:c, 1, 'prior', 0, 0)"), {"c": clinic})
        tx.commit()
    erasure.erase_patient(box.admin_uow(clinic, DPO), erased)
    seal_pending(box.database, box.keyring, DPO)
    return {"clinic": clinic, "patient": patient, "erased": erased}


def _reports(box: Container, clinic: uuid.UUID) -> dict[str, object]:
    return {r.chain: r for r in verify_chains(box.database, DPO, box.keyring, clinic)
            if r.clinic_id == clinic}


@pytest.mark.parametrize("table", LEDGERS)
@pytest.mark.parametrize("statement", ["UPDATE {t} SET clinic_id = clinic_id",
                                       "DELETE FROM {t}", "TRUNCATE {t} CASCADE"])
def test_the_application_login_cannot_change_a_ledger(
        box: Container, world: dict[str, uuid.UUID], table: str, statement: str) -> None:
    with pytest.raises(DBAPIError, match="permission denied"), tenant_session(box.database,
            world["clinic"], DPO.id, "dpo") as s:
        s.execute(text(statement.format(t=table)))


@pytest.mark.parametrize("table", LEDGERS)
@pytest.mark.parametrize("statement", ["UPDATE {t} SET clinic_id = clinic_id",
                                       "DELETE FROM {t}", "TRUNCATE {t} CASCADE"])
def test_the_service_login_cannot_change_a_ledger(
        box: Container, world: dict[str, uuid.UUID], table: str, statement: str) -> None:
    assert world
    with pytest.raises(DBAPIError, match="permission denied"), service_session(box.database,
            DPO.id) as s:
        s.execute(text(statement.format(t=table)))


@pytest.mark.parametrize("table", GUARDED_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE {t} SET clinic_id = clinic_id",
                                       "DELETE FROM {t}", "TRUNCATE {t} CASCADE"])
def test_the_owner_is_refused_by_the_guards(
        box: Container, world: dict[str, uuid.UUID], table: str, statement: str) -> None:
    """The owner first lifts row-level security (its own tables: it may), so that its
    statement reaches every row; the guard still refuses."""
    assert world
    if table in ("audit_chain_cuts", "audit_chain_anchors"):  # a row for the guard to see
        as_owner(box, f"INSERT INTO {table} (clinic_id, seq, hash, key_id, signature"
                      f"{', pruned_events, archive_sha256' if 'cuts' in table else ''}) "
                      f"VALUES (gen_random_uuid(), 1, '\\x00', 'a1', 'x'"
                      f"{', 0, repeat(chr(48), 64)' if 'cuts' in table else ''}) "
                      "ON CONFLICT DO NOTHING", guards_off=False)
    with pytest.raises(DBAPIError, match="append-only"):
        as_owner(box, f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
                 statement.format(t=table), guards_off=False)


def test_the_guards_fire_even_in_replica_mode(box: Container,
                                              world: dict[str, uuid.UUID]) -> None:
    """``session_replication_role = replica`` skips ordinary triggers (a superuser's way
    around them); the guards are ENABLE ALWAYS."""
    engine = create_engine(box.database.owner_url, poolclass=NullPool)  # a superuser
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("SET LOCAL ROLE neonpro_owner"))
        conn.execute(text("UPDATE consent_records SET status = 'granted' WHERE clinic_id = :c"),
                     {"c": world["clinic"]})
    engine.dispose()


def test_the_reported_attacks_on_the_consent_ledger_are_refused(
        box: Container, world: dict[str, uuid.UUID]) -> None:
    """What the review did as the application role inside a clinic's transaction."""
    clinic = world["clinic"]
    attacks = [
        "UPDATE consent_records SET status = 'granted', revoked_at = NULL "
        "WHERE status = 'revoked'",
        "DELETE FROM consent_records WHERE id IN (SELECT id FROM consent_records LIMIT 5)",
        "UPDATE consent_records SET terms_hash = repeat('b', 64), given_at = now()",
        "UPDATE disclosures SET recipient_name = 'ninguém'",
        "DELETE FROM disclosures",
    ]
    for attack in attacks:
        with pytest.raises(DBAPIError, match="permission denied"), \
                tenant_session(box.database, clinic, DPO.id, "dpo") as s:
            s.execute(text(attack))
    with service_session(box.database, DPO.id) as s:
        states = s.execute(text("SELECT status FROM consent_records WHERE clinic_id = :c "
                                "ORDER BY created_at"), {"c": clinic}).scalars().all()
    assert "revoked" in states


def test_erasure_removes_consent_evidence_through_the_one_audited_function(
        box: Container, world: dict[str, uuid.UUID]) -> None:
    clinic = world["clinic"]
    with service_session(box.database, DPO.id) as s:
        evidence = s.execute(text("SELECT evidence FROM consent_records WHERE clinic_id = :c "
                                  "AND patient_id = :p"),
                             {"c": clinic, "p": world["erased"]}).scalars().all()
        events = s.execute(text(
            "SELECT action, details FROM audit_events WHERE clinic_id = :c "
            "AND resource_type = 'consent_records' AND action IN ('UPDATE', 'ANONYMIZE')"),
            {"c": clinic}).all()
    assert evidence == [{"removed": "erasure"}]
    assert ("UPDATE", {"fields": ["evidence"], "source": "trigger"}) in [tuple(e) for e in events]
    assert any(e.action == "ANONYMIZE" and e.details["reason"] == "erasure" for e in events)


def test_the_evidence_function_is_narrow(box: Container, world: dict[str, uuid.UUID]) -> None:
    clinic = world["clinic"]
    # the application login may not call it
    with pytest.raises(DBAPIError, match="permission denied"), tenant_session(box.database,
            clinic, DPO.id, "dpo") as s:
        s.execute(text("SELECT neonpro_remove_consent_evidence(NULL, NULL, 'erasure')"))
    # the service login only in one clinic's transaction, for a reason the law gives
    with pytest.raises(DBAPIError, match="one clinic"), service_session(box.database,
            DPO.id) as s:
        s.execute(text("SELECT neonpro_remove_consent_evidence(ARRAY[CAST(:p AS uuid)], "
                       "NULL, 'erasure')"), {"p": world["patient"]})
    with pytest.raises(DBAPIError, match="erasure or retention"), \
            service_session(box.database, DPO.id, clinic_id=clinic) as s:
        s.execute(text("SELECT neonpro_remove_consent_evidence(ARRAY[CAST(:p AS uuid)], "
                       "NULL, 'because')"), {"p": world["patient"]})
    # the owner itself may blank the evidence, nothing else (the guard checks the value)
    with pytest.raises(DBAPIError, match="append-only"):
        as_owner(box, f"UPDATE consent_records SET evidence = '{{\"ip\": \"1.2.3.4\"}}' "
                      f"WHERE clinic_id = '{clinic}'", guards_off=False)
    with pytest.raises(DBAPIError, match="append-only"):
        as_owner(box, "UPDATE consent_records SET evidence = '{\"removed\": \"erasure\"}', "
                      f"status = 'granted' WHERE clinic_id = '{clinic}'", guards_off=False)


def test_the_erasure_ledger_is_chained_and_verified(box: Container,
                                                    world: dict[str, uuid.UUID]) -> None:
    reports = _reports(box, world["clinic"])
    ledger = reports["erasure_ledger"]
    assert ledger.ok, ledger  # type: ignore[attr-defined]
    assert ledger.sealed >= 1  # type: ignore[attr-defined]
    assert ledger.unsealed == 0  # type: ignore[attr-defined]


@pytest.fixture
def fresh(admin_url: str) -> Iterator[tuple[Container, uuid.UUID]]:
    from tests.conftest import create_database, drop_database  # noqa: PLC0415

    url = create_database(admin_url, "ledger_tamper")
    migrate.upgrade(url, Roles())
    container = Container(make_settings(url), database_url=url, keyring=make_keyring())
    try:
        clinic = clinics.create_clinic(container.service_uow(DPO), ClinicCreate(name="L")).id
        for n in range(4):
            pid = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
                full_name=f"Apagada {n}")).id
            erasure.erase_patient(container.admin_uow(clinic, DPO), pid)
        seal_pending(container.database, container.keyring, DPO)
        yield container, clinic
    finally:
        container.close(seal=False)
        drop_database(admin_url, url)


@pytest.mark.parametrize(("tamper", "reason"), [
    ("UPDATE erasure_ledger SET outcome = 'blocked' WHERE clinic_id = '{c}' AND seq = 2",
     "edited"),
    ("DELETE FROM erasure_ledger WHERE clinic_id = '{c}' AND seq = 2", "missing event"),
    ("UPDATE erasure_ledger SET seq = seq + 1000 WHERE clinic_id = '{c}' AND seq >= 2 ;; "
     "UPDATE erasure_ledger SET seq = seq - 999 WHERE clinic_id = '{c}' AND seq >= 1002 ;; "
     "INSERT INTO erasure_ledger (clinic_id, patient_id, outcome, seq, prev_hash, hash, key_id) "
     "SELECT clinic_id, gen_random_uuid(), 'anonymized', 2, hash, hash, key_id "
     "FROM erasure_ledger WHERE clinic_id = '{c}' AND seq = 1", "hash does not match"),
    ("TRUNCATE erasure_ledger", "events were deleted"),
])
def test_the_owner_editing_the_erasure_ledger_is_detected(
        fresh: tuple[Container, uuid.UUID], tamper: str, reason: str) -> None:
    box, clinic = fresh
    box.checkpoints.take(full=True)  # a checkpoint, in the files and in the system chain
    assert _reports(box, clinic)["erasure_ledger"].ok  # type: ignore[attr-defined]
    as_owner(box, *tamper.format(c=clinic).split(" ;; "))
    ledger = _reports(box, clinic)["erasure_ledger"]
    assert not ledger.ok  # type: ignore[attr-defined]
    assert reason in (ledger.reason or "")  # type: ignore[attr-defined]


def test_a_retention_run_removes_revoked_evidence_through_the_function(
        box: Container, world: dict[str, uuid.UUID]) -> None:
    from neonpro.services import retention  # noqa: PLC0415

    clinic = world["clinic"]
    with box.admin_uow(clinic, DPO) as tx:
        tx.connection.execute(text(
            "INSERT INTO retention_policies (clinic_id, data_category, trigger, period, action, "
            "legal_reference) VALUES (:c, 'marketing', 'consent_revoked', interval '0', "
            "'delete', 'LGPD art. 16')"), {"c": clinic})
        tx.commit()
    plan = retention.plan_retention(box, DPO, clinic, now=datetime.now(UTC))
    report = retention.apply_retention(box, DPO, plan)
    assert report.by_outcome.get("consent_evidence_removed", 0) >= 1
    with service_session(box.database, DPO.id) as s:
        left = s.execute(text("SELECT evidence FROM consent_records WHERE clinic_id = :c "
                              "AND status = 'revoked'"), {"c": clinic}).scalars().all()
    assert left == [{"removed": "retention"}]
    dsn = owner_url(box).replace("postgresql+psycopg://", "postgresql://")
    # and the owner itself cannot do more than it did
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE consent_records SET evidence = '{\"removed\": \"retention\"}', "
                     "revoked_at = now()")
