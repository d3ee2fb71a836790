"""Audit search, investigation, compliance report and security events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from neonpro.adapters.db.audit import seal_pending
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import ConsentRequired, ValidationFailed
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate, PatientUpdate
from neonpro.domain.vocabulary import AuditAction, AuditResource, ConsentPurpose
from neonpro.queries.audit import AuditFilters
from neonpro.queries.compliance import report_html
from neonpro.services import audit as audit_service
from neonpro.services import clinics, consents, patients

NOSY = Actor(uuid.uuid4(), "receptionist", ip_address="198.51.100.23", request_id="r-nosy")
OTHER = Actor(uuid.uuid4(), "professional", ip_address="198.51.100.99")
DPO = Actor(uuid.uuid4(), "dpo")


@pytest.fixture
def clinic(container: Container) -> uuid.UUID:
    return clinics.create_clinic(container.service_uow(DPO), ClinicCreate(name="Inv")).id


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(hours=1)


def test_investigation_names_patients_and_categories(container: Container,
                                                     clinic: uuid.UUID) -> None:
    seen = [patients.register_patient(container.uow(clinic, OTHER),
                                      PatientCreate(full_name=f"Alvo {i}")).id for i in range(3)]
    untouched = patients.register_patient(container.uow(clinic, OTHER),
                                          PatientCreate(full_name="Intocado")).id
    patients.get_patient(container.uow(clinic, NOSY), seen[0])
    patients.get_patient(container.uow(clinic, NOSY), seen[1])
    patients.update_patient(container.uow(clinic, NOSY), seen[2],
                            PatientUpdate(version=1, phone_primary="11987654321"))
    since, until = _window()
    by_actor = audit_service.investigate_access(container.uow(clinic, DPO), since, until,
                                                actor_id=NOSY.id)
    assert by_actor.events == 3
    assert set(by_actor.patients) == set(seen)
    assert untouched not in by_actor.patients
    assert {"contact", "clinical", "identification"} <= set(by_actor.categories)
    by_ip = audit_service.investigate_access(container.uow(clinic, DPO), since, until,
                                             ip_address="198.51.100.23")
    assert set(by_ip.patients) == set(seen)
    nobody = audit_service.investigate_access(container.uow(clinic, DPO), since, until,
                                              ip_address="203.0.113.1")
    assert (nobody.events, nobody.patients) == (0, [])


def test_search_filters_and_pages(container: Container, clinic: uuid.UUID) -> None:
    pid = patients.register_patient(container.uow(clinic, OTHER),
                                    PatientCreate(full_name="Procurada")).id
    for _ in range(5):
        patients.get_patient(container.uow(clinic, NOSY), pid)
    since, until = _window()
    filters = AuditFilters(patient_id=pid, action="VIEW", since=since, until=until)
    first = audit_service.search_audit(container.uow(clinic, DPO), filters, limit=3)
    assert len(first.items) == 3
    assert first.next_cursor is not None
    second = audit_service.search_audit(container.uow(clinic, DPO), filters, limit=3,
                                        cursor=first.next_cursor)
    assert len(second.items) == 2
    assert second.next_cursor is None
    ids = [e.id for e in first.items + second.items]
    assert len(set(ids)) == 5
    # the cursor is sealed to this clinic and these filters: elsewhere it is a 4xx
    other = clinics.create_clinic(container.service_uow(DPO), ClinicCreate(name="Outra")).id
    for where, used in ((clinic, AuditFilters(patient_id=pid, action="UPDATE", since=since,
                                                 until=until)),
                        (other, filters)):
        with pytest.raises(ValidationFailed):
            audit_service.search_audit(container.uow(where, DPO), used, limit=3,
                                       cursor=first.next_cursor)
    assert all(e.actor_id == NOSY.id and e.ip_address == "198.51.100.23"
               for e in first.items + second.items)


def test_permission_denials_are_security_events(container: Container, clinic: uuid.UUID) -> None:
    pid = patients.register_patient(container.uow(clinic, OTHER),
                                    PatientCreate(full_name="Sem Consentimento")).id
    with pytest.raises(ConsentRequired), container.uow(clinic, NOSY) as tx:
        consents.require_consent(tx, pid, ConsentPurpose.MARKETING)
    since, until = _window()
    page = audit_service.search_audit(
        container.uow(clinic, DPO),
        AuditFilters(action="PERMISSION_DENIED", actor_id=NOSY.id, since=since, until=until))
    assert len(page.items) == 1
    assert page.items[0].status == "blocked"
    assert page.items[0].details == {"error": "consent_required"}


def test_compliance_report_json_and_html(container: Container, clinic: uuid.UUID) -> None:
    pid = patients.register_patient(container.uow(clinic, OTHER),
                                    PatientCreate(full_name="Relatada <b>")).id
    patients.get_patient(container.uow(clinic, NOSY), pid)
    seal_pending(container.database, container.keyring, DPO)
    since, until = _window()
    report = audit_service.clinic_report(container.uow(clinic, DPO), since, until,
                                         container.audit_chain)
    assert report["accesses_by_role"]["receptionist"] >= 1
    assert report["audit_chain"]["ok"] is True
    assert report["audit_chain"]["unsealed"] == 0
    page = report_html(report)
    assert page.startswith("<!doctype html>")
    assert "Audit chain" in page
    assert "<b>" not in page.split("<h1>")[1].split("</h1>")[0]


@pytest.mark.parametrize(("resource", "resource_id", "expected"), [
    # list reads: spelled after the table before AuditResource, in the singular since
    ("patients", None, {"identification": 1}),
    (AuditResource.PATIENT, None, {"identification": 1}),
    ("appointments", None, {"clinical": 1, "identification": 1}),
    (AuditResource.APPOINTMENT, None, {"clinical": 1, "identification": 1}),
    # a read of one appointment: what its row holds
    (AuditResource.APPOINTMENT, uuid.uuid4(), {"clinical": 1, "insurance": 1}),
])
def test_a_list_read_counts_the_same_in_either_spelling(
        container: Container, clinic: uuid.UUID, resource: str,
        resource_id: uuid.UUID | None, expected: dict[str, int]) -> None:
    reader = Actor(uuid.uuid4(), "receptionist")
    with container.uow(clinic, reader) as uow:
        uow.audit.record(AuditAction.VIEW, resource, resource_id,
                         details={"returned": 2} if resource_id is None else None)
        uow.commit()
    since, until = _window()
    found = audit_service.investigate_access(container.uow(clinic, DPO), since, until,
                                             actor_id=reader.id)
    assert (found.events, found.categories) == (1, expected)
