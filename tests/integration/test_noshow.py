"""No-show risk on a real PostgreSQL: features in SQL, training, the time-based evaluation
against the prior-only baseline on the demo generator's history, scores recorded beside the
appointments (versions untouched), outcomes filled in by the trigger, the prior fallback."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import text

from neonpro.adapters.db.repositories.noshow import SqlNoShowRepository
from neonpro.bootstrap import Container
from neonpro.devtools.demo import ZONE, DemoResult, seed_demo
from neonpro.domain.actors import SystemActors
from neonpro.domain.errors import ValidationFailed
from neonpro.domain.noshow import FEATURE_NAMES, encode, linear_prediction
from neonpro.domain.schemas.appointment import AppointmentCreate, AppointmentUpdate
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import NoShowModelKind
from neonpro.services import catalog, clinics, noshow, patients, scheduling
from tests.sessions import service_session

ACTOR = SystemActors.CLI
SP = ZoneInfo("America/Sao_Paulo")
TODAY = datetime.now(ZONE).date()
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def demo(container: Container) -> DemoResult:
    return seed_demo(container, patients=200, months=12, seed=8008, today=TODAY)


@pytest.fixture(scope="module")
def big_clinic(container: Container, demo: DemoResult) -> uuid.UUID:
    """The demo clinic with the most history (the first: half of the patients)."""
    return demo.clinics[0]


def _rows(container: Container, clinic: uuid.UUID) -> list:  # type: ignore[type-arg]
    with container.uow(clinic, ACTOR) as tx:
        return SqlNoShowRepository(tx).labelled(NOW)


@pytest.mark.slow
def test_the_model_beats_the_prior_baseline_on_a_time_based_hold_out(
    container: Container, big_clinic: uuid.UUID
) -> None:
    report = noshow.evaluate_model(container.uow(big_clinic, ACTOR))
    assert report.train_rows > 300
    assert report.test_rows > 100
    assert report.test_no_shows > 15
    # trained strictly before the cut, tested from it on
    assert report.auc > report.baseline_auc
    assert report.auc > 0.7
    assert report.brier < 0.2
    assert report.auc_line().startswith("AUC model=0.")
    assert len(report.deciles) == 10
    assert sum(d.count for d in report.deciles) == report.test_rows
    # the riskiest tenth misses far more often than the safest
    assert report.deciles[-1].no_show_rate > report.deciles[0].no_show_rate + 0.2


def test_lead_time_and_past_no_shows_are_learnt_as_raising_the_risk(
    container: Container, big_clinic: uuid.UUID
) -> None:
    rows = _rows(container, big_clinic)
    params = noshow.fit_logistic(rows, 0.2)
    coef = dict(zip(FEATURE_NAMES, params["coef"], strict=True))
    assert coef["log_lead_days"] > 0
    assert coef["prior_log_odds"] + coef["past_no_shows"] > 0
    # lead times come from the bookings' created_at, set by the generator through the service
    leads = [r.lead_days for r in rows]
    assert min(leads) < 3
    assert max(leads) > 21


def test_stored_numbers_score_exactly_as_scikit_learn(
    container: Container, big_clinic: uuid.UUID
) -> None:
    rows = _rows(container, big_clinic)
    pipeline = noshow.fit_pipeline(rows, 0.2)
    params = noshow.params_of(pipeline, 0.2)
    expected = pipeline.predict_proba(np.array([encode(r, 0.2) for r in rows]))[:, 1]
    ours = [linear_prediction(r, params).probability for r in rows]
    assert np.allclose(ours, expected, atol=1e-9)


def test_train_stores_a_new_version_with_its_metrics(
    container: Container, big_clinic: uuid.UUID
) -> None:
    first = noshow.train_model(container.uow(big_clinic, ACTOR))
    second = noshow.train_model(container.uow(big_clinic, ACTOR))
    assert second.model.version == first.model.version + 1
    assert second.model.kind is NoShowModelKind.LOGISTIC
    assert second.model.label == f"v{second.model.version}-logistic"
    holdout = second.model.metrics["holdout"]
    assert holdout["auc"] > holdout["baseline_auc"]
    assert "brier" in holdout
    assert second.model.metrics["library"].startswith("scikit-learn ")
    with container.uow(big_clinic, ACTOR) as tx:
        latest = SqlNoShowRepository(tx).latest_model()
    assert latest is not None
    assert latest.id == second.model.id
    assert latest.params["features"] == list(FEATURE_NAMES)


def test_scores_are_recorded_beside_the_appointments_without_touching_them(
    container: Container, big_clinic: uuid.UUID
) -> None:
    with service_session(container.database, ACTOR.id) as s:
        before = {r.id: (r.version, r.updated_at) for r in s.execute(text(
            "SELECT id, version, updated_at FROM appointments WHERE clinic_id = :c "
            "AND status IN ('scheduled', 'confirmed') AND start_time >= now()"),
            {"c": big_clinic})}
        audit_before = s.execute(text(
            "SELECT count(*) FROM audit_events WHERE clinic_id = :c "
            "AND resource_type = 'appointments' AND action = 'UPDATE'"),
            {"c": big_clinic}).scalar_one()
    assert len(before) > 5
    result = noshow.score_upcoming(container.uow(big_clinic, ACTOR), days=40)
    assert result.scored == len(before)
    with service_session(container.database, ACTOR.id) as s:
        after = {r.id: (r.version, r.updated_at) for r in s.execute(text(
            "SELECT id, version, updated_at FROM appointments WHERE id = ANY(:ids)"),
            {"ids": list(before)})}
        scores = {r.appointment_id: r for r in s.execute(text(
            "SELECT * FROM appointment_risk_scores WHERE clinic_id = :c "
            "AND appointment_id = ANY(:ids)"), {"c": big_clinic, "ids": list(before)})}
        audit_after = s.execute(text(
            "SELECT count(*) FROM audit_events WHERE clinic_id = :c "
            "AND resource_type = 'appointments' AND action = 'UPDATE'"),
            {"c": big_clinic}).scalar_one()
        aggregates = dict(s.execute(text(
            "SELECT p.id, p.no_show_risk_score FROM patients p WHERE p.clinic_id = :c "
            "AND p.id IN (SELECT patient_id FROM appointments WHERE id = ANY(:ids))"),
            {"c": big_clinic, "ids": list(before)}).all())
        owners = dict(s.execute(text("SELECT id, patient_id FROM appointments "
                                     "WHERE id = ANY(:ids)"), {"ids": list(before)}).all())
    assert after == before  # versions and updated_at untouched
    assert audit_after == audit_before  # no appointment row was written
    assert set(scores) == set(before)
    for row in scores.values():
        assert 0 <= row.score <= 100
        assert row.model_version == result.model.label
        assert row.model_id == result.model.id
        assert row.predicted_at is not None
        assert row.actual_outcome is None
        assert isinstance(row.factors, list)
        assert len(row.factors) <= 3
        for factor in row.factors:
            assert set(factor) == {"factor", "value", "weight"}
            assert factor["weight"] > 0
    assert any(row.factors for row in scores.values())
    # the patient's aggregate: the highest score among their upcoming appointments
    for patient_id, aggregate in aggregates.items():
        mine = [scores[a].score for a, p in owners.items() if p == patient_id]
        assert aggregate == max(mine)
    # reads carry the recorded score and factors; a staff edit with the version read
    # before scoring still goes through
    some = next(iter(before))
    appointment = scheduling.get_appointment(container.uow(big_clinic, ACTOR), some)
    assert appointment.no_show_risk_score == scores[some].score
    assert appointment.no_show_model_version == result.model.label
    assert appointment.no_show_risk_factors == scores[some].factors
    edited = scheduling.update_appointment(container.uow(big_clinic, ACTOR), some,
                                           AppointmentUpdate(version=before[some][0],
                                                             room_id="Sala 9"))
    assert edited.version == before[some][0] + 1
    assert edited.no_show_risk_score == scores[some].score


def test_the_outcome_is_filled_in_when_the_appointment_ends(
    container: Container, big_clinic: uuid.UUID
) -> None:
    noshow.score_upcoming(container.uow(big_clinic, ACTOR), days=40)
    with service_session(container.database, ACTOR.id) as s:
        ids = list(s.execute(text(
            "SELECT a.id FROM appointments a JOIN appointment_risk_scores r "
            "ON r.clinic_id = a.clinic_id AND r.appointment_id = a.id "
            "WHERE a.clinic_id = :c AND a.status = 'scheduled' ORDER BY a.start_time LIMIT 3"),
            {"c": big_clinic}).scalars())
    assert len(ids) == 3
    missed, kept, _untouched = ids
    uow = container.uow
    appointment = scheduling.get_appointment(uow(big_clinic, ACTOR), missed)
    scheduling.mark_no_show(uow(big_clinic, ACTOR), missed, appointment.version)
    appointment = scheduling.get_appointment(uow(big_clinic, ACTOR), kept)
    started = scheduling.start_appointment(uow(big_clinic, ACTOR), kept, appointment.version)
    scheduling.complete_appointment(uow(big_clinic, ACTOR), kept, started.version)
    with service_session(container.database, ACTOR.id) as s:
        outcome = dict(s.execute(text(
            "SELECT appointment_id, actual_outcome FROM appointment_risk_scores "
            "WHERE clinic_id = :c AND appointment_id = ANY(:ids)"),
            {"c": big_clinic, "ids": ids}).all())
    assert outcome == {missed: "no_show", kept: "attended", _untouched: None}
    recorded = noshow.recorded_performance(container.uow(big_clinic, ACTOR))
    assert recorded["predictions_with_outcome"] >= 2


def _small_clinic(container: Container) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    clinic = clinics.create_clinic(container.service_uow(ACTOR), ClinicCreate(
        name="Clínica Pequena", timezone="America/Sao_Paulo")).id
    prof = catalog.add_professional(container.uow(clinic, ACTOR), ProfessionalCreate(
        full_name="Dra. Pequena", can_work_weekends=True, appointment_buffer_minutes=0)).id
    patient = patients.register_patient(container.uow(clinic, ACTOR),
                                        PatientCreate(full_name="Paciente Pequeno")).id
    return clinic, prof, patient


def _book(container: Container, clinic: uuid.UUID, prof: uuid.UUID, patient: uuid.UUID,
          day: date, booked_days_before: float) -> uuid.UUID:
    start = datetime.combine(day, time(10), tzinfo=SP)
    return scheduling.book_appointment(container.uow(clinic, ACTOR), AppointmentCreate(
        patient_id=patient, professional_id=prof, start_time=start,
        end_time=start + timedelta(minutes=30)),
        booked_at=start - timedelta(days=booked_days_before)).id


def test_features_come_from_the_patients_own_earlier_history(container: Container) -> None:
    clinic, prof, patient = _small_clinic(container)
    today = datetime.now(SP).date()
    past = [_book(container, clinic, prof, patient, today - timedelta(days=d), 5)
            for d in (30, 20, 10)]
    for i, appointment_id in enumerate(past):
        current = scheduling.get_appointment(container.uow(clinic, ACTOR), appointment_id)
        if i < 2:
            scheduling.mark_no_show(container.uow(clinic, ACTOR), appointment_id,
                                    current.version)
        else:
            started = scheduling.start_appointment(container.uow(clinic, ACTOR),
                                                   appointment_id, current.version)
            scheduling.complete_appointment(container.uow(clinic, ACTOR), appointment_id,
                                            started.version)
    coming = _book(container, clinic, prof, patient, today + timedelta(days=3), 40)
    with container.uow(clinic, ACTOR) as tx:
        repo = SqlNoShowRepository(tx)
        upcoming = repo.upcoming(datetime.now(UTC), datetime.now(UTC) + timedelta(days=7))
        labelled = repo.labelled(datetime.now(UTC))
    [f] = upcoming
    assert f.appointment_id == coming
    assert (f.past_visits, f.past_no_shows) == (3, 2)
    assert 39.9 < f.lead_days < 40.1
    assert f.days_since_last_visit is not None
    assert 12.9 < f.days_since_last_visit < 13.1
    assert f.weekday == (today + timedelta(days=3)).isoweekday()
    assert f.hour == 10
    assert not f.first_visit
    # each past appointment sees only what came before it
    assert [(r.past_visits, r.past_no_shows, r.label) for r in labelled] == [
        (0, 0, 1), (1, 1, 1), (2, 2, 0)]
    assert labelled[0].first_visit
    assert labelled[2].first_visit  # never attended before this one

    # too little history: the prior fallback, stored as a model version and used to score
    result = noshow.score_upcoming(container.uow(clinic, ACTOR), days=7)
    assert result.model.kind is NoShowModelKind.PRIOR
    assert result.model.label == "v1-prior"
    assert "reason" in result.model.metrics
    assert result.scored == 1
    read = scheduling.get_appointment(container.uow(clinic, ACTOR), coming)
    assert read.no_show_model_version == "v1-prior"
    assert read.no_show_risk_score is not None
    assert read.no_show_risk_score > 30  # two misses out of three raise it above the base
    assert [f["factor"] for f in read.no_show_risk_factors] == ["past_no_shows"]
    assert read.version == 1
    with pytest.raises(noshow.NotEnoughHistory):
        noshow.evaluate_model(container.uow(clinic, ACTOR))


def test_a_booking_cannot_be_made_after_its_start(container: Container) -> None:
    clinic, prof, patient = _small_clinic(container)
    with pytest.raises(ValidationFailed, match="booked_at"):
        _book(container, clinic, prof, patient, datetime.now(SP).date() + timedelta(days=2),
              -1)
