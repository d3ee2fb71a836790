"""The demo data generator on a real PostgreSQL: through the services, valid, deterministic,
with a learnable no-show signal."""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, time, timedelta

import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.devtools.demo import ZONE, DemoResult, DemoSeedExists, seed_demo
from neonpro.domain import values
from neonpro.domain.actors import SystemActors
from neonpro.domain.paging import PageRequest
from neonpro.domain.schemas.appointment import CalendarEntry, Window
from neonpro.domain.schemas.patient import PatientRead
from neonpro.domain.vocabulary import ConsentPurpose, LegalBasis
from neonpro.services import consents, patients, scheduling
from tests.conftest import make_keyring, make_settings

READER = SystemActors.DEMO_SEED
TODAY = datetime.now(ZONE).date()  # both runs of a comparison share it (midnight-proof)


def _seed_small(box: Container, seed: int) -> DemoResult:
    return seed_demo(box, patients=40, months=3, seed=seed, today=TODAY)


def _patients(box: Container, result: DemoResult) -> dict[uuid.UUID, list[PatientRead]]:
    out: dict[uuid.UUID, list[PatientRead]] = {}
    for clinic in result.clinics:
        page = patients.search_patients(box.uow(clinic, READER), page=PageRequest(limit=200))
        out[clinic] = sorted(page.items, key=lambda p: p.medical_record_number)
    return out


def _calendar_by_clinic(box: Container,
                        result: DemoResult) -> dict[uuid.UUID, list[CalendarEntry]]:
    window = Window(datetime.combine(result.first_day - timedelta(days=1), time.min, ZONE),
                    datetime.combine(result.last_day + timedelta(days=2), time.min, ZONE))
    return {c: scheduling.calendar(box.uow(c, READER), window) for c in result.clinics}


def _calendar(box: Container, result: DemoResult) -> list[CalendarEntry]:
    return [r for rows in _calendar_by_clinic(box, result).values() for r in rows]


@pytest.fixture(scope="module")
def small(container: Container) -> DemoResult:
    return _seed_small(container, 1001)


@pytest.fixture
def second_box(fresh_database_url: str, roles: Roles) -> Iterator[Container]:
    migrate.upgrade(fresh_database_url, roles)
    box = Container(make_settings(fresh_database_url), database_url=fresh_database_url,
                    keyring=make_keyring())
    try:
        yield box
    finally:
        box.close()


def test_clinics_staff_and_patients_spread_with_valid_identifiers(
    container: Container, small: DemoResult
) -> None:
    assert len(small.clinics) == 2
    assert len(small.patients) == 40
    # per clinic: admin, receptionist, dpo and one account per professional
    assert len(small.users) == 6 + len(small.professionals)
    by_clinic = _patients(container, small)
    assert all(len(rows) >= 5 for rows in by_clinic.values())
    assert sum(len(rows) for rows in by_clinic.values()) == 40
    for rows in by_clinic.values():
        for p in rows:
            assert p.cpf is not None
            assert p.cns is not None
            values.Cpf(p.cpf)  # raises if the check digits are wrong
            assert values.cns_is_valid(p.cns)
            assert p.phone_primary is not None
            assert values.Phone(p.phone_primary).is_mobile
            assert p.state in {"SP", "RJ", "MG"}
            assert p.postal_code is not None
            assert len(p.given_names) >= 1
            assert p.primary_professional_id in small.professionals


def test_every_patient_has_a_treatment_consent_and_some_marketing(
    container: Container, small: DemoResult
) -> None:
    purposes: Counter[str] = Counter()
    for clinic, rows in _patients(container, small).items():
        for p in rows:
            history = consents.consent_history(container.uow(clinic, READER), p.id)
            purposes.update(c.purpose for c in history)
            treatment = [c for c in history if c.purpose == ConsentPurpose.TREATMENT]
            assert len(treatment) == 1
            assert treatment[0].legal_basis == LegalBasis.HEALTH_PROTECTION
    assert purposes["treatment"] == 40
    assert 0 < purposes["marketing"] < 40
    assert small.consents == purposes.total()


def test_appointments_have_a_realistic_mix_of_statuses(
    container: Container, small: DemoResult
) -> None:
    rows = _calendar(container, small)
    counts = Counter(r.status for r in rows)
    assert len(rows) == small.appointments
    assert {s: n for s, n in small.statuses.items() if n} == dict(counts)
    for status in ("completed", "no_show", "cancelled", "rescheduled", "scheduled"):
        assert counts[status] > 0, status
    past = [r for r in rows if r.start_time.astimezone(ZONE).date() < TODAY]
    assert all(r.status not in {"scheduled", "confirmed"} for r in past)
    # a reschedule links the new appointment to the old one, through the service
    clinic, moved = next((c, r) for c, entries in _calendar_by_clinic(container, small).items()
                         for r in entries if r.status == "rescheduled")
    with container.uow(clinic, READER) as tx:
        history = tx.appointments.list_for_patient(moved.patient_id, PageRequest(limit=200))
    successor = [a for a in history.items if a.rescheduled_from_id == moved.id]
    assert len(successor) == 1
    assert successor[0].reschedule_count >= 1


def test_patient_counters_agree_with_the_appointments(
    container: Container, small: DemoResult
) -> None:
    no_shows = Counter(r.patient_id for r in _calendar(container, small) if r.status == "no_show")
    for rows in _patients(container, small).values():
        for p in rows:
            assert p.total_no_shows == no_shows[p.id]


def test_same_seed_same_data_other_seed_other_data(
    container: Container, small: DemoResult, second_box: Container
) -> None:
    again = _seed_small(second_box, 1001)
    assert again.outcomes == small.outcomes
    assert again.statuses == small.statuses
    assert again.appointments == small.appointments
    assert again.clinics != small.clinics  # ids are new; content is the same

    def people(box: Container, result: DemoResult) -> list[tuple[str, str | None, str]]:
        return [(p.full_name, p.cpf, p.medical_record_number)
                for rows in _patients(box, result).values() for p in rows]

    assert people(second_box, again) == people(container, small)

    other = _seed_small(second_box, 1002)
    assert other.outcomes != small.outcomes
    assert people(second_box, other) != people(container, small)


def test_the_same_seed_twice_is_a_clear_conflict(container: Container, small: DemoResult) -> None:
    with pytest.raises(DemoSeedExists, match="demo data for seed 1001 already exists"):
        seed_demo(container, patients=5, seed=small.seed, months=1)


@pytest.mark.parametrize(("patients", "months"), [(0, 1), (-5, 1), (10, 0), (10, 61)])
def test_sizes_out_of_range_are_refused(container: Container, patients: int, months: int) -> None:
    with pytest.raises(ValueError, match="must be between"):
        seed_demo(container, patients=patients, months=months, seed=1003)


@pytest.mark.slow
def test_past_no_shows_predict_later_no_shows(container: Container) -> None:
    """The learnable signal, computed from the rows alone in time order: appointments of
    patients who already missed one are missed far more often than the others."""
    result = seed_demo(container, patients=150, seed=2024, months=12, today=TODAY)
    history: defaultdict[uuid.UUID, list[CalendarEntry]] = defaultdict(list)
    for row in _calendar(container, result):
        if row.status in {"completed", "no_show"}:
            history[row.patient_id].append(row)
    outcomes: dict[bool, Counter[bool]] = {False: Counter(), True: Counter()}
    for rows in history.values():
        missed = 0
        for row in sorted(rows, key=lambda r: r.start_time):
            outcomes[missed > 0][row.status == "no_show"] += 1
            missed += row.status == "no_show"
    clean, repeat = outcomes[False], outcomes[True]
    assert clean.total() > 300
    assert repeat.total() > 100
    clean_rate = clean[True] / clean.total()
    repeat_rate = repeat[True] / repeat.total()
    assert 0.03 < clean_rate < 0.2
    # one sample of a random process whose calendar moves with the date: the ratio was
    # 1.85-2.9 over dates half a year apart, so the claim is a one-sided two-proportion
    # z-test (z > 3: p < 0.0015 by chance) and a ratio well above one, not a fixed factor
    pooled = (clean[True] + repeat[True]) / (clean.total() + repeat.total())
    spread = math.sqrt(pooled * (1 - pooled) * (1 / clean.total() + 1 / repeat.total()))
    assert (repeat_rate - clean_rate) / spread > 3
    assert repeat_rate > 1.5 * clean_rate
