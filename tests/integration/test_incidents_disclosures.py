"""The security-incident register and the disclosure log against a real PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import (
    Conflict,
    ConsentRequired,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate, PatientUpdate
from neonpro.domain.vocabulary import (
    CollectionMethod,
    ConsentPurpose,
    DataCategory,
    IncidentStatus,
    LegalBasis,
    RiskLevel,
)
from neonpro.queries.audit import AuditFilters
from neonpro.services import audit as audit_service
from neonpro.services import clinics, consents, patients
from neonpro.services import disclosures as disclosure_svc
from neonpro.services import incidents as incident_svc
from neonpro.services.disclosures import DisclosureCreate
from neonpro.services.incidents import AccessScope, IncidentClose, IncidentCreate, Notification

SP = ZoneInfo("America/Sao_Paulo")
NORONHA = ZoneInfo("America/Noronha")  # UTC-2
DPO = Actor(uuid.uuid4(), "dpo")
DESK = Actor(uuid.uuid4(), "receptionist", ip_address="198.51.100.40")
INTRUDER = Actor(uuid.uuid4(), "receptionist", ip_address="203.0.113.66")


def _clinic(container: Container, zone: str = "America/Sao_Paulo") -> uuid.UUID:
    return clinics.create_clinic(container.service_uow(DPO),
                                 ClinicCreate(name="Incidentes", timezone=zone)).id


@pytest.fixture
def clinic(container: Container) -> uuid.UUID:
    return _clinic(container)


def _patient(container: Container, clinic: uuid.UUID, name: str) -> uuid.UUID:
    return patients.register_patient(container.uow(clinic, DESK),
                                     PatientCreate(full_name=name)).id


def _incident(container: Container, clinic: uuid.UUID, learned: datetime, *,
              now: datetime | None = None, **fields: object) -> incident_svc.IncidentRead:
    data = IncidentCreate(detected_at=learned, description="notebook da recepção perdido",
                          **fields)
    return incident_svc.register_incident(container.uow(clinic, DPO), data,
                                          now=now or learned + timedelta(hours=1))


# ------------------------------------------------------------------ incidents

def test_deadline_skips_good_friday_and_the_weekend(container: Container,
                                                    clinic: uuid.UUID) -> None:
    learned = datetime(2026, 4, 2, 16, 0, tzinfo=SP)  # Thursday before Good Friday
    incident = _incident(container, clinic, learned,
                         affected_data_categories=[DataCategory.CLINICAL],
                         risk_level=RiskLevel.LOW)
    assert incident.notification_due_at == datetime(2026, 4, 8, 23, 59, 59, tzinfo=SP)
    assert incident.status == "open"
    assert incident.risk_level == "high"  # health data is never below high
    assert incident.retain_until == date(2031, 4, 2)
    assert incident.reported_by == DPO.id


def test_deadline_follows_the_clinic_time_zone(container: Container) -> None:
    learned = datetime(2026, 4, 8, 2, 30, tzinfo=UTC)  # Tue 23:30 in SP, Wed 00:30 in Noronha
    sp = _incident(container, _clinic(container), learned)
    noronha = _incident(container, _clinic(container, "America/Noronha"), learned)
    assert sp.notification_due_at == datetime(2026, 4, 10, 23, 59, 59, tzinfo=SP)
    assert noronha.notification_due_at == datetime(2026, 4, 13, 23, 59, 59, tzinfo=NORONHA)


def test_registration_is_an_incident_audit_event(container: Container,
                                                 clinic: uuid.UUID) -> None:
    now = datetime.now(UTC)
    incident = _incident(container, clinic, now - timedelta(minutes=5), now=now,
                         risk_level=RiskLevel.CRITICAL)
    page = audit_service.search_audit(container.uow(clinic, DPO), AuditFilters(
        action="INCIDENT", since=now - timedelta(hours=1), until=now + timedelta(hours=1)))
    [event] = page.items
    assert event.risk_level == "critical"
    assert event.resource_id == str(incident.id)
    assert event.details["step"] == "registered"
    assert "notebook" not in str(event.details)  # the description is never in the trail


def test_a_low_risk_incident_without_health_data_stays_low(container: Container,
                                                           clinic: uuid.UUID) -> None:
    now = datetime.now(UTC)
    low = _incident(container, clinic, now - timedelta(minutes=1), now=now,
                    affected_data_categories=[DataCategory.MARKETING], risk_level=RiskLevel.LOW)
    assert low.risk_level == "low"
    default = _incident(container, clinic, now - timedelta(minutes=1), now=now)
    assert default.risk_level == "high"


def test_impossible_moments_are_refused(container: Container, clinic: uuid.UUID) -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValidationFailed) as caught:
        _incident(container, clinic, now + timedelta(days=1), now=now)
    assert caught.value.field == "detected_at"
    with pytest.raises(ValueError, match="learned_at"):
        IncidentCreate(detected_at=now, learned_at=now - timedelta(hours=1), description="x")


def test_affected_patients_come_from_the_audit_trail(container: Container,
                                                     clinic: uuid.UUID) -> None:
    read = [_patient(container, clinic, f"Afetada {i}") for i in range(3)]
    untouched = _patient(container, clinic, "Intocada")
    start = datetime.now(UTC) - timedelta(seconds=1)
    patients.get_patient(container.uow(clinic, INTRUDER), read[0])
    patients.get_patient(container.uow(clinic, INTRUDER), read[1])
    patients.update_patient(container.uow(clinic, INTRUDER), read[2],
                            PatientUpdate(version=1, phone_primary="11987654321"))
    end = datetime.now(UTC) + timedelta(seconds=1)
    incident = incident_svc.register_incident(container.uow(clinic, DPO), IncidentCreate(
        detected_at=end, description="acesso indevido por credencial emprestada",
        risk_level=RiskLevel.MEDIUM,
        scope=AccessScope(actor_id=INTRUDER.id, since=start, until=end)),
        now=end + timedelta(minutes=1))
    assert incident.affected_patient_count == 3
    assert {"identification", "contact"} <= set(incident.affected_data_categories)
    assert incident.risk_level == "high"  # a patient read exposes clinical columns
    by_ip = incident_svc.assess_affected(
        container.uow(clinic, DPO), incident.id,
        AccessScope(ip_address="203.0.113.66", since=start, until=end))
    assert set(by_ip.investigation.patients) == set(read)
    assert untouched not in by_ip.investigation.patients
    assert by_ip.investigation.events == 3
    # the default window: 30 days before detection until now
    default = incident_svc.assess_affected(container.uow(clinic, DPO), incident.id,
                                           AccessScope(actor_id=INTRUDER.id))
    assert default.since == incident.detected_at - timedelta(days=30)
    assert set(default.investigation.patients) == set(read)
    # storing another scope's count: nobody else was touched from this address
    stored = incident_svc.assess_affected(
        container.uow(clinic, DPO), incident.id,
        AccessScope(ip_address="192.0.2.1", since=start, until=end),
        store=True)
    assert stored.incident.affected_patient_count == 0
    assert stored.incident.affected_data_categories == incident.affected_data_categories
    with pytest.raises(ValueError, match="exactly one"):
        AccessScope(since=start, until=end)


def test_notifications_and_the_overdue_list(container: Container, clinic: uuid.UUID) -> None:
    now = datetime.now(UTC)
    late = _incident(container, clinic, now - timedelta(days=10), now=now)
    recent = _incident(container, clinic, now - timedelta(minutes=10), now=now)
    quiet = _incident(container, clinic, now - timedelta(days=10), now=now,
                      affected_data_categories=[DataCategory.MARKETING],
                      risk_level=RiskLevel.LOW)

    def overdue() -> set[uuid.UUID]:
        page = incident_svc.list_incidents(container.uow(clinic, DPO), overdue=True, now=now)
        assert all(i.is_overdue(now) for i in page.items)
        return {i.id for i in page.items}

    assert overdue() == {late.id}
    everything = incident_svc.list_incidents(container.uow(clinic, DPO), now=now)
    assert {i.id for i in everything.items} == {late.id, recent.id, quiet.id}
    assert everything.items[0].id == recent.id  # newest detection first
    assert not quiet.is_overdue(now)
    told = incident_svc.notify(container.uow(clinic, DPO), late.id,
                               Notification(which="anpd"), now=now)
    assert told.notified_anpd_at == now
    assert overdue() == {late.id}  # the patients were not told yet
    with pytest.raises(Conflict):
        incident_svc.notify(container.uow(clinic, DPO), late.id, Notification(which="anpd"))
    with pytest.raises(ValidationFailed):
        incident_svc.notify(container.uow(clinic, DPO), recent.id, Notification(
            which="subjects", at=recent.learned_at - timedelta(hours=1)))
    incident_svc.notify(container.uow(clinic, DPO), late.id, Notification(which="subjects"))
    assert overdue() == set()
    with pytest.raises(NotFound):
        incident_svc.notify(container.uow(clinic, DPO), uuid.uuid4(), Notification(which="anpd"))
    assert late.id not in {i.id for i in incident_svc.list_incidents(
        container.uow(_clinic(container), DPO)).items}  # another clinic's register


def test_contain_then_close(container: Container, clinic: uuid.UUID) -> None:
    detected = datetime(2026, 3, 2, 10, tzinfo=SP)
    incident = _incident(container, clinic, detected, now=detected + timedelta(days=1))
    with pytest.raises(ValidationFailed) as caught:
        incident_svc.close_incident(container.uow(clinic, DPO), incident.id, IncidentClose())
    assert caught.value.field == "mitigation"
    contained = incident_svc.close_incident(container.uow(clinic, DPO), incident.id,
                                            IncidentClose(status="contained",
                                                          mitigation="senhas trocadas"))
    assert (contained.status, contained.closed_at) == ("contained", None)
    with pytest.raises(ValidationFailed):
        incident_svc.close_incident(container.uow(clinic, DPO), incident.id, IncidentClose(
            closed_at=detected - timedelta(days=1)))
    closed_at = datetime(2027, 1, 15, 12, tzinfo=SP)
    closed = incident_svc.close_incident(container.uow(clinic, DPO), incident.id,
                                         IncidentClose(closed_at=closed_at),
                                         now=closed_at + timedelta(hours=1))
    assert closed.status == IncidentStatus.CLOSED
    assert closed.closed_at == closed_at
    assert closed.mitigation == "senhas trocadas"
    assert closed.retain_until == date(2032, 1, 15)
    with pytest.raises(InvalidTransition):
        incident_svc.close_incident(container.uow(clinic, DPO), incident.id,
                                    IncidentClose(mitigation="de novo"),
                                    now=closed_at + timedelta(days=1))
    listed = incident_svc.list_incidents(container.uow(clinic, DPO),
                                         status=IncidentStatus.CLOSED)
    assert [i.id for i in listed.items] == [incident.id]


# ---------------------------------------------------------------- disclosures

def _sharing(patient: uuid.UUID, basis: LegalBasis, **fields: object) -> DisclosureCreate:
    return DisclosureCreate(
        patient_id=patient, recipient_name="Laboratório Exemplo Ltda",
        recipient_address="Rua das Flores 10, Recife-PE", data_description="hemograma",
        data_categories=[DataCategory.CLINICAL, DataCategory.IDENTIFICATION],
        purpose="exame laboratorial", legal_basis=basis, **fields)


def _grant_sharing(container: Container, clinic: uuid.UUID, patient: uuid.UUID) -> uuid.UUID:
    return consents.grant_consent(container.uow(clinic, DESK), ConsentCreate(
        patient_id=patient, purpose=ConsentPurpose.DATA_SHARING, terms_version="s1",
        terms_hash=hashlib.sha256(b"s").hexdigest(),
        collection_method=CollectionMethod.WRITTEN)).id


def test_sharing_on_consent_needs_a_current_consent(container: Container,
                                                    clinic: uuid.UUID) -> None:
    pid = _patient(container, clinic, "Compartilhada")
    with pytest.raises(ConsentRequired):
        disclosure_svc.record_disclosure(container.uow(clinic, DESK),
                                         _sharing(pid, LegalBasis.CONSENT))
    consent = _grant_sharing(container, clinic, pid)
    row = disclosure_svc.record_disclosure(container.uow(clinic, DESK),
                                           _sharing(pid, LegalBasis.CONSENT))
    assert row.consent_record_id == consent
    assert row.disclosed_by == DESK.id
    assert row.data_categories == ["clinical", "identification"]
    consents.revoke_consent(container.uow(clinic, DESK), consent)
    with pytest.raises(ConsentRequired):
        disclosure_svc.record_disclosure(container.uow(clinic, DESK),
                                         _sharing(pid, LegalBasis.CONSENT))


def test_other_bases_and_consent_references(container: Container, clinic: uuid.UUID) -> None:
    pid, other = _patient(container, clinic, "Base Legal"), _patient(container, clinic, "Outra")
    care = disclosure_svc.record_disclosure(container.uow(clinic, DESK),
                                            _sharing(pid, LegalBasis.HEALTH_PROTECTION))
    assert care.consent_record_id is None
    with pytest.raises(ValidationFailed) as caught:
        disclosure_svc.record_disclosure(container.uow(clinic, DESK),
                                         _sharing(pid, LegalBasis.LEGITIMATE_INTEREST))
    assert caught.value.field == "legal_basis"
    foreign = _grant_sharing(container, clinic, other)
    with pytest.raises(ValidationFailed):
        disclosure_svc.record_disclosure(container.uow(clinic, DESK), _sharing(
            pid, LegalBasis.LEGAL_OBLIGATION, consent_record_id=foreign))
    with pytest.raises(NotFound):
        disclosure_svc.record_disclosure(container.uow(_clinic(container), DESK),
                                         _sharing(pid, LegalBasis.HEALTH_PROTECTION))


def test_a_patients_disclosures_over_six_years(container: Container, clinic: uuid.UUID) -> None:
    pid, other = _patient(container, clinic, "Relato"), _patient(container, clinic, "Alheia")
    now = datetime.now(UTC)
    old = disclosure_svc.record_disclosure(container.uow(clinic, DESK), _sharing(
        pid, LegalBasis.LEGAL_OBLIGATION, disclosed_at=now - timedelta(days=7 * 365)))
    recent = disclosure_svc.record_disclosure(container.uow(clinic, DESK), _sharing(
        pid, LegalBasis.LEGAL_OBLIGATION, disclosed_at=now - timedelta(days=30)))
    newest = disclosure_svc.record_disclosure(container.uow(clinic, DESK),
                                              _sharing(pid, LegalBasis.HEALTH_PROTECTION))
    disclosure_svc.record_disclosure(container.uow(clinic, DESK),
                                     _sharing(other, LegalBasis.HEALTH_PROTECTION))
    page = disclosure_svc.list_disclosures(container.uow(clinic, DPO), pid)
    assert [d.id for d in page.items] == [newest.id, recent.id]
    assert page.total == 2
    everything = disclosure_svc.list_disclosures(container.uow(clinic, DPO), pid,
                                                 since=now - timedelta(days=10 * 365))
    assert [d.id for d in everything.items] == [newest.id, recent.id, old.id]
    clinic_wide = disclosure_svc.list_disclosures(container.uow(clinic, DPO))
    assert len(clinic_wide.items) == 3
    with pytest.raises(ValidationFailed):
        disclosure_svc.record_disclosure(container.uow(clinic, DESK), _sharing(
            pid, LegalBasis.LEGAL_OBLIGATION, disclosed_at=now + timedelta(days=1)))
    with pytest.raises(NotFound):
        disclosure_svc.list_disclosures(container.uow(_clinic(container), DPO), pid)
    since = now - timedelta(minutes=5)
    trail = audit_service.search_audit(container.uow(clinic, DPO), AuditFilters(
        patient_id=pid, resource_type="disclosures", since=since,
        until=now + timedelta(minutes=5)))
    assert {e.action for e in trail.items} >= {"CREATE", "VIEW"}
