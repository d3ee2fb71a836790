"""Booking and rescheduling over HTTP after ``neonpro noshow score`` (issue 13, defect 1).

On a clinic with two or more scores every ``POST /appointments`` and every reschedule
answered 500 (the write's ``RETURNING`` read the scores uncorrelated); with exactly one it
answered another appointment's score. Each appointment the API returns must carry its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.services import clinics, noshow
from tests.e2e.api_helpers import headers
from tests.integration.test_booking_after_scoring import set_scores

SP = ZoneInfo("America/Sao_Paulo")
CLI = SystemActors.CLI  # who `neonpro noshow score` runs as


def _window(day: Any, hour: int, slot: int) -> dict[str, str]:
    start = datetime.combine(day, time(hour), tzinfo=SP) + timedelta(minutes=30 * slot)
    return {"start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat()}


@pytest.mark.parametrize("count", [0, 1, 3])
def test_book_and_reschedule_after_scoring_return_their_own_scores(
    client: TestClient, box: Container, database_url: str, count: int
) -> None:
    clinic = clinics.create_clinic(box.service_uow(CLI), ClinicCreate(name="Escore API")).id
    desk = headers(box, clinic, "receptionist")
    admin = headers(box, clinic, "admin")
    prof = client.post("/professionals", headers=admin, json={
        "full_name": "Dr. Escore", "work_start_time": "07:00", "work_end_time": "20:00",
        "appointment_buffer_minutes": 0, "can_work_weekends": True}).json()["id"]
    pid = client.post("/patients", headers=desk, json={"full_name": "Escore"}).json()["id"]
    day = datetime.now(SP).date() + timedelta(days=2)
    slots = iter(range(26))

    def book() -> dict[str, Any]:
        answer = client.post("/appointments", headers=desk, json={
            "patient_id": pid, "professional_id": prof, **_window(day, 7, next(slots))})
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    booked = [book() for _ in range(count)]
    expected: dict[str, int | None] = {}
    if count:
        assert noshow.score_upcoming(box.uow(clinic, CLI), days=14).scored == count
        expected = {a["id"]: 11 + 7 * i for i, a in enumerate(booked)}
        set_scores(database_url, {uuid.UUID(k): v for k, v in expected.items()})  # type: ignore[misc]

    fresh = book()  # was 500 with two or more scores, another's score with one
    assert fresh["no_show_risk_score"] is None
    expected[fresh["id"]] = None

    for appointment_id, score in expected.items():
        read = client.get(f"/appointments/{appointment_id}", headers=desk).json()
        assert read["no_show_risk_score"] == score
        changed = client.patch(f"/appointments/{appointment_id}", headers=desk,
                               json={"version": read["version"], "notes": "lembrete"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["no_show_risk_score"] == score
        confirmed = client.post(f"/appointments/{appointment_id}/confirm", headers=desk,
                                json={"version": changed.json()["version"]})
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["no_show_risk_score"] == score

    calendar = client.get("/calendar", headers=desk, params={
        "start": datetime.combine(day, time(0), tzinfo=SP).isoformat(),
        "end": datetime.combine(day, time(23), tzinfo=SP).isoformat()})
    assert calendar.status_code == 200, calendar.text
    assert {e["id"]: e["no_show_risk_score"] for e in calendar.json()} == expected

    first = next(iter(expected))
    version = client.get(f"/appointments/{first}", headers=desk).json()["version"]
    moved = client.post(f"/appointments/{first}/reschedule", headers=desk, json={
        "version": version, **_window(day, 7, next(slots))})
    assert moved.status_code == 201, moved.text  # was 500 with two or more scores
    assert moved.json()["rescheduled_from_id"] == first
    assert moved.json()["no_show_risk_score"] is None
    assert client.get(f"/appointments/{first}",
                      headers=desk).json()["no_show_risk_score"] == expected[first]

    # after the next scoring run: still bookable, the moved one reads its own score
    noshow.score_upcoming(box.uow(clinic, CLI), days=14)
    set_scores(database_url, {uuid.UUID(moved.json()["id"]): 97})
    again = client.post(f"/appointments/{moved.json()['id']}/reschedule", headers=desk, json={
        "version": moved.json()["version"], **_window(day, 7, next(slots))})
    assert again.status_code == 201, again.text
    assert again.json()["no_show_risk_score"] is None
    assert client.get(f"/appointments/{moved.json()['id']}",
                      headers=desk).json()["no_show_risk_score"] == 97
    assert book()["no_show_risk_score"] is None
