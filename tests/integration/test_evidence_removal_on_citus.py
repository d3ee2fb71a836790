"""Consent evidence on Citus (``audit_sql.evidence``): the service role removes it with a grant
the owner's function gives its transaction, which the ledger guard checks on the worker.

The adversary is SQL running as the service role (or as the application): without a grant,
with a forged one, with one of an earlier transaction, with one for another clinic or to
change anything but the evidence, the ledger refuses the UPDATE. The first case shows the
path works at all (so the refusals are the guard's, not a broken setup).

These functions exist on Citus only: the module runs in ``./dev test-citus`` (required in
CI); on one server the owner's SECURITY DEFINER function does the removal
(``test_consent_ledger.py``, ``test_erasure.py``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose
from neonpro.services import clinics, consents, patients
from tests.conftest import CITUS
from tests.sessions import service_session, set_clinic, tenant_session

pytestmark = pytest.mark.skipif(
    not CITUS, reason="the evidence grant exists on Citus only: run by ./dev test-citus")

DPO = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e2"), "dpo")
REMOVE = ("UPDATE consent_records SET evidence = '{\"removed\": \"erasure\"}'::jsonb "
          "WHERE id = :id")


def _consent(container: Container, name: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A clinic and one consent with evidence in it: (clinic, consent id)."""
    clinic = clinics.create_clinic(container.service_uow(DPO), ClinicCreate(name=name)).id
    pid = patients.register_patient(container.uow(clinic, DPO), PatientCreate(
        full_name="Evidencia Citus")).id
    consent = consents.grant_consent(container.uow(clinic, DPO), ConsentCreate(
        patient_id=pid, purpose=ConsentPurpose.MARKETING, terms_version="m1",
        terms_hash="e" * 64, collection_method=CollectionMethod.ONLINE_FORM,
        evidence={"ip": "198.51.100.7"}))
    return clinic, consent.id


@pytest.fixture
def two(container: Container) -> tuple[tuple[uuid.UUID, uuid.UUID], tuple[uuid.UUID, uuid.UUID]]:
    return _consent(container, "Evidencia A"), _consent(container, "Evidencia B")


def _refused(session: Any, statement: str, **params: Any) -> None:
    with pytest.raises(DBAPIError) as caught:
        session.execute(text(statement), params)
    assert caught.value.orig is not None
    assert caught.value.orig.sqlstate == "42501", caught.value.orig.sqlstate  # type: ignore[attr-defined]


def _evidence(container: Container, consent: uuid.UUID) -> Any:
    with service_session(container.database, DPO.id) as s:
        return s.execute(text("SELECT evidence FROM consent_records WHERE id = :id"),
                         {"id": consent}).scalar_one()


def test_the_grant_lets_the_evidence_go_and_nothing_else(container: Container, two: Any) -> None:
    (clinic, consent), _ = two
    with service_session(container.database, DPO.id, clinic_id=clinic) as s:
        s.execute(text("SELECT neonpro_allow_evidence_removal('erasure')"))
        assert s.execute(text(REMOVE), {"id": consent}).rowcount == 1
    assert _evidence(container, consent) == {"removed": "erasure"}


def test_no_grant_a_forged_one_or_an_earlier_one_is_refused(container: Container,
                                                            two: Any) -> None:
    (clinic, consent), _ = two
    db = container.database
    with service_session(db, DPO.id, clinic_id=clinic) as s:
        _refused(s, REMOVE, id=consent)
    with service_session(db, DPO.id, clinic_id=clinic) as s:
        earlier = s.execute(text("SELECT neonpro_allow_evidence_removal('erasure'), "
                                 "current_setting('app.evidence_removal')")).one()[1]
    for forged in ("00" * 32, earlier):
        with service_session(db, DPO.id, clinic_id=clinic) as s:
            s.execute(text("SET LOCAL citus.propagate_set_commands = 'local'"))
            s.execute(text(f"SET LOCAL app.evidence_removal = '{forged}'"))
            _refused(s, REMOVE, id=consent)
    assert _evidence(container, consent) == {"ip": "198.51.100.7"}


def test_a_grant_reaches_no_other_clinic_and_no_other_column(container: Container,
                                                             two: Any) -> None:
    (clinic, consent), (_, other) = two
    db = container.database
    with service_session(db, DPO.id, clinic_id=clinic) as s:  # the service role sees B's row
        s.execute(text("SELECT neonpro_allow_evidence_removal('erasure')"))
        _refused(s, REMOVE, id=other)
    with service_session(db, DPO.id, clinic_id=clinic) as s:
        s.execute(text("SELECT neonpro_allow_evidence_removal('retention')"))
        _refused(s, REMOVE, id=consent)  # granted for retention, written as erasure
    with service_session(db, DPO.id, clinic_id=clinic) as s:
        s.execute(text("SELECT neonpro_allow_evidence_removal('erasure')"))
        _refused(s, "UPDATE consent_records SET evidence = '{\"removed\": \"erasure\"}', "
                    "terms_version = 'forged' WHERE id = :id", id=consent)
    assert _evidence(container, other) == {"ip": "198.51.100.7"}
    assert _evidence(container, consent) == {"ip": "198.51.100.7"}


def test_the_application_role_cannot_ask_for_a_grant(container: Container, two: Any) -> None:
    (clinic, _), _ = two
    for function in ("neonpro_allow_evidence_removal('erasure')",
                     "neonpro_evidence_mac('1', 'x', 'erasure')"):
        with tenant_session(container.database, clinic, DPO.id, "dpo") as s:
            _refused(s, f"SELECT {function}")


def test_set_clinic_alone_gives_no_grant(container: Container, two: Any) -> None:
    """A clinic set by hand (no bound context) is no grant either."""
    (clinic, _), _ = two
    with service_session(container.database, DPO.id) as s:
        set_clinic(s.connection().connection.driver_connection, clinic)
        _refused(s, "SELECT neonpro_allow_evidence_removal('erasure')")
