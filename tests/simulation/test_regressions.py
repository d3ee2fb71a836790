"""What the whole-clinic simulation found, each shrunk to its minimal sequence and kept
as a plain test (the simulation itself is random; these are not).

1. Issue 13, defect 1. With the booking fix reverted, the simulation fails on
   ``book, book, score_no_show_risk, book``: the third booking answers 500
   (CardinalityViolation: the ``RETURNING`` read every score of the clinic).
2. Found by the simulation: a blocked patient's booking kept holding the professional's
   time while it was shown nowhere; blocking now cancels the bookings still to come.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.services import clinics, noshow
from tests.e2e.api_helpers import headers
from tests.simulation.machine import SP, World, day0


def test_book_book_score_book(world: World) -> None:
    box, client = world.box, world.client
    clinic = clinics.create_clinic(box.service_uow(SystemActors.CLI),
                                   ClinicCreate(name="Regressao 1")).id
    desk, admin = headers(box, clinic, "receptionist"), headers(box, clinic, "admin")
    prof = client.post("/professionals", headers=admin, json={
        "full_name": "Dra Regressao", "work_start_time": "07:00", "work_end_time": "20:00",
        "appointment_buffer_minutes": 0, "can_work_weekends": True}).json()["id"]
    patient = client.post("/patients", headers=desk, json={"full_name": "Regressao"}).json()

    def book(slot: int) -> Any:
        start = datetime.combine(day0(), time(8), tzinfo=SP) + timedelta(minutes=30 * slot)
        return client.post("/appointments", headers=desk, json={
            "patient_id": patient["id"], "professional_id": prof,
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat()})

    first, second = book(0), book(1)
    assert (first.status_code, second.status_code) == (201, 201)
    noshow.score_upcoming(box.uow(clinic, SystemActors.CLI), days=14)  # `noshow score`
    third = book(2)
    assert third.status_code == 201, third.text
    assert third.json()["no_show_risk_score"] is None
    scored = client.get(f"/appointments/{first.json()['id']}", headers=desk).json()
    assert scored["no_show_risk_score"] is not None


def test_a_blocked_patients_booking_does_not_hold_time_invisibly(world: World) -> None:
    """Book for a patient with clinical data, erase (outcome ``blocked``): the booking is
    gone from the calendar and its read is 404, yet its slot still answers 409."""
    box, client = world.box, world.client
    clinic = clinics.create_clinic(box.service_uow(SystemActors.CLI),
                                   ClinicCreate(name="Regressao 2")).id
    desk, admin = headers(box, clinic, "receptionist"), headers(box, clinic, "admin")
    dpo = headers(box, clinic, "dpo")
    prof = client.post("/professionals", headers=admin, json={
        "full_name": "Dra Bloqueio", "work_start_time": "07:00", "work_end_time": "20:00",
        "appointment_buffer_minutes": 0, "can_work_weekends": True}).json()["id"]
    held = client.post("/patients", headers=admin, json={
        "full_name": "Com Prontuario", "patient_notes": "hipertensa"}).json()["id"]
    other = client.post("/patients", headers=desk, json={"full_name": "Outra"}).json()["id"]
    start = datetime.combine(day0(), time(9), tzinfo=SP)
    slot = {"professional_id": prof, "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat()}
    booked = client.post("/appointments", headers=desk, json={"patient_id": held, **slot})
    assert booked.status_code == 201, booked.text
    erased = client.post(f"/lgpd/patients/{held}/erasure", headers=dpo)
    assert erased.json()["outcome"] == "blocked"
    assert client.get(f"/appointments/{booked.json()['id']}", headers=desk).status_code == 404
    calendar = client.get("/calendar", headers=desk, params={
        "start": (start - timedelta(hours=1)).isoformat(),
        "end": (start + timedelta(hours=1)).isoformat()})
    assert calendar.json() == []
    again = client.post("/appointments", headers=desk, json={"patient_id": other, **slot})
    assert again.status_code == 201, again.text  # today: 409 double_booking
