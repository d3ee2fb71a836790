"""The incident register's rules (LGPD Art. 48, ANPD Res. 15/2024) against in-memory fakes:
the notification deadline, the risk floor for health data, the status graph, retention."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from neonpro.domain.schemas.incident import Investigation
from neonpro.domain.vocabulary import DataCategory, IncidentStatus, RiskLevel
from neonpro.services import incidents as svc
from neonpro.services.incidents import AccessScope, IncidentClose, IncidentCreate, Notification
from tests.unit.fakes import FakeUnitOfWork

SP = ZoneInfo("America/Sao_Paulo")
MANAUS = ZoneInfo("America/Manaus")
DPO = Actor(uuid.uuid4(), "admin")
CLINIC = uuid.uuid4()
# Thursday 2031-04-17, 22:30 in São Paulo (already Friday in UTC); Monday the 21st is
# Tiradentes, a national holiday
LEARNED = datetime(2031, 4, 17, 22, 30, tzinfo=SP)
NOW = datetime(2031, 4, 18, 12, 0, tzinfo=SP)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    fake = FakeUnitOfWork(DPO, CLINIC)
    fake.clinics.seed(CLINIC, "America/Sao_Paulo")
    return fake


def report(**kw: object) -> IncidentCreate:
    fields: dict[str, object] = {"detected_at": LEARNED, "description": "lost laptop"}
    return IncidentCreate.model_validate({**fields, **kw})


def test_notification_is_due_at_the_end_of_the_third_business_day_in_the_clinics_zone(
        uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(uow, report(), now=NOW)
    # Fri 18 (1), weekend and Tiradentes skipped, Tue 22 (2), Wed 23 (3); counted from the
    # local day (Thursday), not the UTC one (Friday), which would give Thursday the 24th
    assert incident.notification_due_at == datetime(2031, 4, 23, 23, 59, 59, tzinfo=SP)
    assert uow.commits == 1


def test_the_deadline_follows_the_clinics_own_time_zone() -> None:
    fake = FakeUnitOfWork(DPO, CLINIC)
    fake.clinics.seed(CLINIC, "America/Manaus")
    # 23:30 in São Paulo is 22:30 in Manaus: the same day there, but a different due moment
    incident = svc.register_incident(fake, report(detected_at=LEARNED + timedelta(hours=1)),
                                     now=NOW)
    assert incident.notification_due_at == datetime(2031, 4, 23, 23, 59, 59, tzinfo=MANAUS)


def test_learned_at_starts_the_clock_and_retention_is_five_years_from_detection(
        uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(
        uow, report(detected_at=datetime(2031, 4, 10, 9, tzinfo=SP), learned_at=LEARNED),
        now=NOW)
    assert incident.notification_due_at == datetime(2031, 4, 23, 23, 59, 59, tzinfo=SP)
    assert incident.retain_until == date(2036, 4, 10)


def test_a_report_from_the_future_is_refused(uow: FakeUnitOfWork) -> None:
    with pytest.raises(ValidationFailed, match="detected_at"):
        svc.register_incident(uow, report(detected_at=NOW + timedelta(hours=1)), now=NOW)
    assert uow.store.get("incidents") == {}


@pytest.mark.parametrize(("given", "categories", "expected"), [
    (None, [], RiskLevel.HIGH),  # default high
    (RiskLevel.LOW, [DataCategory.CONTACT], RiskLevel.LOW),
    (RiskLevel.LOW, [DataCategory.CLINICAL], RiskLevel.HIGH),  # health data: never below high
    (RiskLevel.MEDIUM, [DataCategory.IMAGES], RiskLevel.HIGH),
    (RiskLevel.CRITICAL, [DataCategory.CLINICAL], RiskLevel.CRITICAL),
])
def test_risk_is_floored_at_high_for_health_data(uow: FakeUnitOfWork, given: RiskLevel | None,
                                                 categories: list[DataCategory],
                                                 expected: RiskLevel) -> None:
    incident = svc.register_incident(
        uow, report(risk_level=given, affected_data_categories=categories), now=NOW)
    assert incident.risk_level == expected
    assert incident.notification_required is (expected in (RiskLevel.HIGH, RiskLevel.CRITICAL))


def test_an_investigation_raises_the_count_and_categories_and_so_the_risk(
        uow: FakeUnitOfWork) -> None:
    intruder = uuid.uuid4()
    uow.trail.found[intruder] = Investigation(
        events=7, patients=[uuid.uuid4(), uuid.uuid4()], unresolved_patient_refs=1,
        categories={"clinical": 3, "not_a_category": 1})
    incident = svc.register_incident(uow, report(
        risk_level=RiskLevel.LOW, affected_patient_count=1,
        affected_data_categories=[DataCategory.CONTACT], scope={"actor_id": str(intruder)}),
        now=NOW)
    assert incident.affected_patient_count == 3  # two found, one unresolved reference
    assert incident.affected_data_categories == ["clinical", "contact"]
    assert incident.risk_level == RiskLevel.HIGH
    since, until, actor, _ = uow.trail.asked[0]
    assert (since, until, actor) == (LEARNED - timedelta(days=30), NOW, intruder)


def test_a_stored_assessment_replaces_the_count_merges_categories_and_floors_the_risk(
        uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(uow, report(
        risk_level=RiskLevel.LOW, affected_patient_count=40,
        affected_data_categories=[DataCategory.CONTACT]), now=NOW)
    uow.trail.found["203.0.113.9"] = Investigation(events=2, patients=[uuid.uuid4()],
                                                   categories={"images": 2})
    scope = AccessScope(ip_address="203.0.113.9")  # type: ignore[arg-type]
    looked = svc.assess_affected(uow, incident.id, scope, now=NOW)
    assert looked.incident.affected_patient_count == 40  # without store: nothing changes
    stored = svc.assess_affected(uow, incident.id, scope, store=True, now=NOW).incident
    assert stored.affected_patient_count == 1  # this investigation's count, not the maximum
    assert stored.affected_data_categories == ["contact", "images"]
    assert stored.risk_level == RiskLevel.HIGH


def test_the_window_of_a_closed_incident_ends_at_its_closure(uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(uow, report(), now=NOW)
    closed_at = NOW + timedelta(hours=2)
    svc.close_incident(uow, incident.id, IncidentClose(mitigation="wiped", closed_at=closed_at),
                       now=closed_at)
    later = NOW + timedelta(days=90)
    affected = svc.assess_affected(uow, incident.id, AccessScope(actor_id=DPO.id), now=later)
    assert (affected.since, affected.until) == (LEARNED - timedelta(days=30), closed_at)


def test_each_party_is_notified_once_and_not_before_the_clinic_knew(
        uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(uow, report(), now=NOW)
    with pytest.raises(ValidationFailed, match="learned"):
        svc.notify(uow, incident.id, Notification(which="anpd", at=LEARNED - timedelta(1)),
                   now=NOW)
    told = svc.notify(uow, incident.id, Notification(which="anpd"), now=NOW)
    assert told.notified_anpd_at == NOW
    assert told.notified_subjects_at is None
    with pytest.raises(Conflict):
        svc.notify(uow, incident.id, Notification(which="anpd"), now=NOW)
    assert uow.incidents.get(incident.id).notified_anpd_at == NOW


def test_a_late_notification_is_recorded_as_late(uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(uow, report(), now=NOW)
    assert incident.notification_due_at is not None
    on_time = incident.notification_due_at - timedelta(minutes=1)
    late = incident.notification_due_at + timedelta(minutes=1)
    svc.notify(uow, incident.id, Notification(which="anpd", at=on_time), now=late)
    svc.notify(uow, incident.id, Notification(which="subjects", at=late), now=late)
    steps = [e["details"] for e in uow.audit.events if e["details"].get("step") == "notified"]
    assert [(s["party"], s["late"]) for s in steps] == [("anpd", False), ("subjects", True)]


def test_overdue_means_notifiable_past_due_and_someone_not_yet_told(
        uow: FakeUnitOfWork) -> None:
    high = svc.register_incident(uow, report(), now=NOW)
    svc.register_incident(uow, report(risk_level=RiskLevel.LOW), now=NOW)  # not notifiable
    told = svc.register_incident(uow, report(), now=NOW)
    assert high.notification_due_at is not None
    after = high.notification_due_at + timedelta(seconds=1)
    for which in ("anpd", "subjects"):
        svc.notify(uow, told.id, Notification(which=which, at=NOW), now=after)  # type: ignore[arg-type]
    svc.notify(uow, high.id, Notification(which="anpd", at=NOW), now=after)  # half told
    assert svc.list_incidents(uow, overdue=True, now=high.notification_due_at).items == []
    overdue = svc.list_incidents(uow, overdue=True, now=after).items
    assert [i.id for i in overdue] == [high.id]
    assert overdue[0].is_overdue(after)
    assert not uow.incidents.get(told.id).is_overdue(after)


@pytest.mark.parametrize(("path", "refused"), [
    (["contained", "closed"], None),
    (["closed"], None),
    (["closed", "contained"], "contained"),
    (["contained", "contained"], "contained"),
    (["closed", "closed"], "closed"),
])
def test_status_graph(uow: FakeUnitOfWork, path: list[str], refused: str | None) -> None:
    incident = svc.register_incident(uow, report(), now=NOW)
    *allowed, last = path
    for status in allowed:
        svc.close_incident(uow, incident.id, IncidentClose(status=status, mitigation="wiped"),  # type: ignore[arg-type]
                           now=NOW)
    close = IncidentClose(status=last, mitigation="wiped")  # type: ignore[arg-type]
    if refused is None:
        assert svc.close_incident(uow, incident.id, close, now=NOW).status == last
    else:
        with pytest.raises(InvalidTransition):
            svc.close_incident(uow, incident.id, close, now=NOW)


def test_closing_needs_a_mitigation_and_extends_retention_from_closure(
        uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(uow, report(), now=NOW)
    with pytest.raises(ValidationFailed, match="mitigation"):
        svc.close_incident(uow, incident.id, IncidentClose(), now=NOW)
    assert uow.incidents.get(incident.id).status == IncidentStatus.OPEN
    svc.close_incident(uow, incident.id, IncidentClose(status="contained", mitigation="wiped"),
                       now=NOW)
    later = datetime(2032, 2, 1, 10, tzinfo=SP)
    closed = svc.close_incident(uow, incident.id, IncidentClose(), now=later)  # keeps mitigation
    assert closed.closed_at == later
    assert closed.mitigation == "wiped"
    assert closed.retain_until == date(2037, 2, 1)


def test_closure_before_detection_is_refused(uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(uow, report(), now=NOW)
    with pytest.raises(ValidationFailed, match="closed_at"):
        svc.close_incident(uow, incident.id, IncidentClose(
            mitigation="wiped", closed_at=LEARNED - timedelta(days=1)), now=NOW)


def test_another_clinics_incident_is_not_found(uow: FakeUnitOfWork) -> None:
    incident = svc.register_incident(uow, report(), now=NOW)
    other = FakeUnitOfWork(DPO, uuid.uuid4(), store=uow.store)
    with pytest.raises(NotFound):
        svc.get_incident(other, incident.id)
    with pytest.raises(NotFound):
        svc.notify(other, incident.id, Notification(which="anpd"), now=NOW)
