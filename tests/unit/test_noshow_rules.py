"""The no-show service's rules over the in-memory unit of work: when a clinic gets a fitted
model or the prior fallback, model versions, what is scored and audited, the refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, ValidationFailed
from neonpro.domain.noshow import Features
from neonpro.domain.vocabulary import AuditAction, AuditResource, NoShowModelKind
from neonpro.services import noshow
from tests.unit.fakes import FakeUnitOfWork

ACTOR = Actor(uuid.uuid4(), "admin")
CLINIC = uuid.uuid4()
NOW = datetime(2031, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(ACTOR, CLINIC)


def _appointment(start: datetime, label: int | None, *, patient: uuid.UUID | None = None,
                 past_visits: int = 0, past_no_shows: int = 0) -> Features:
    return Features(uuid.uuid4(), patient or uuid.uuid4(), start, past_visits=past_visits,
                    past_no_shows=past_no_shows, lead_days=3.0, weekday=start.isoweekday(),
                    hour=start.hour, appointment_type="consultation", reminders_sent=0,
                    confirmed=False, reschedules=0, days_since_last_visit=None, label=label)


def _history(count: int, every: int = 5) -> list[Features]:
    """``count`` past appointments, one a day up to yesterday, every ``every``-th missed."""
    return [_appointment(NOW - timedelta(days=count - i), int(i % every == 0))
            for i in range(count)]


def test_a_small_history_gets_the_prior_fallback_with_its_reason(uow: FakeUnitOfWork) -> None:
    uow.no_show.seed(*_history(50))
    result = noshow.train_model(uow, now=NOW)
    assert result.model.kind is NoShowModelKind.PRIOR
    assert (result.rows, result.no_shows, result.evaluation) == (50, 10, None)
    assert "needs 200" in result.model.metrics["reason"]
    assert result.model.params["base_rate"] == pytest.approx(result.model.base_rate)
    event = uow.audit.events[-1]
    assert (event["action"], event["resource_type"]) == (AuditAction.CREATE,
                                                         AuditResource.NO_SHOW_MODEL)
    assert event["details"] == {"version": 1, "kind": "prior", "rows": 50}
    assert uow.commits == 1


def test_enough_of_each_outcome_gets_a_fitted_model_and_versions_grow(
        uow: FakeUnitOfWork) -> None:
    uow.no_show.seed(*_history(400))
    first = noshow.train_model(uow, now=NOW)
    assert first.model.kind is NoShowModelKind.LOGISTIC
    assert "coef" in first.model.params
    assert "holdout" in first.model.metrics
    second = noshow.train_model(uow, now=NOW)
    assert (first.model.version, second.model.version) == (1, 2)
    assert noshow.current_model(uow) == second.model


def test_one_outcome_only_is_not_enough_for_a_fitted_model(uow: FakeUnitOfWork) -> None:
    uow.no_show.seed(*(_appointment(NOW - timedelta(days=i + 1), 0) for i in range(300)))
    assert noshow.train_model(uow, now=NOW).model.kind is NoShowModelKind.PRIOR


def test_scoring_trains_first_and_scores_only_the_horizon(uow: FakeUnitOfWork) -> None:
    patient = uuid.uuid4()
    uow.no_show.seed(*_history(30))
    soon = _appointment(NOW + timedelta(days=2), None, patient=patient, past_visits=4,
                        past_no_shows=4)
    later = _appointment(NOW + timedelta(days=3), None, patient=patient)
    beyond = _appointment(NOW + timedelta(days=20), None)
    uow.no_show.seed(soon, later, beyond)
    result = noshow.score_upcoming(uow, days=14, now=NOW)
    assert (result.model.version, result.scored, result.patients_updated) == (1, 2, 1)
    assert uow.no_show.score_of(beyond.appointment_id) is None
    risky = uow.no_show.score_of(soon.appointment_id)
    assert risky is not None
    assert risky["model_version"] == "v1-prior"
    assert uow.no_show.aggregates[patient].value == risky["score"]
    assert uow.audit.events[-1]["details"] == {"scored": 2, "model": "v1-prior"}
    # scored again: the patient's aggregate did not move
    assert noshow.score_upcoming(uow, days=14, now=NOW).patients_updated == 0


def test_a_model_of_other_features_is_refused_and_nothing_is_kept(uow: FakeUnitOfWork) -> None:
    uow.no_show.add_model(NoShowModelKind.LOGISTIC, {"features": ["lead_days"],
                                                     "base_rate": 0.2}, {},
                          rows=0, no_shows=0, history=(None, None))
    upcoming = _appointment(NOW + timedelta(days=1), None)
    uow.no_show.seed(upcoming)
    with pytest.raises(Conflict, match="trained on other features"):
        noshow.score_upcoming(uow, now=NOW)
    assert uow.commits == 0
    assert uow.no_show.score_of(upcoming.appointment_id) is None


def test_high_risk_lists_the_day_riskiest_first_above_the_threshold(
        uow: FakeUnitOfWork) -> None:
    day = date(2031, 3, 10)
    start = datetime(2031, 3, 10, 14, tzinfo=UTC)  # 11:00 in São Paulo
    risky = [_appointment(start + timedelta(hours=i), None, past_visits=3, past_no_shows=n)
             for i, n in enumerate((3, 1, 0))]
    uow.no_show.seed(*_history(30), *risky)
    noshow.score_upcoming(uow, days=14, now=NOW)
    scores = {f.appointment_id: uow.no_show.score_of(f.appointment_id) for f in risky}
    threshold = sorted(s["score"] for s in scores.values() if s)[1]
    listed = noshow.high_risk_on(uow, day, min_score=threshold)
    assert [r.score for r in listed] == sorted((s["score"] for s in scores.values() if s
                                                and s["score"] >= threshold), reverse=True)
    assert all(r.score >= threshold for r in listed)
    assert listed[0].appointment_id == risky[0].appointment_id
    assert uow.audit.events[-1]["details"] == {"purpose": "no_show_high_risk",
                                               "returned": len(listed)}


def test_high_risk_refuses_an_impossible_day_before_any_work(uow: FakeUnitOfWork) -> None:
    with pytest.raises(ValidationFailed):
        noshow.high_risk_on(uow, date(1800, 1, 1))
    assert (uow.commits, uow.audit.events) == (0, [])


def test_recorded_performance_has_auc_only_with_both_outcomes(uow: FakeUnitOfWork) -> None:
    coming = [_appointment(NOW + timedelta(days=1 + i), None, past_visits=2,
                           past_no_shows=i % 3) for i in range(4)]
    uow.no_show.seed(*_history(30), *coming)
    noshow.score_upcoming(uow, now=NOW)
    for f in coming:
        uow.no_show.set_outcome(f.appointment_id, "attended")
    assert noshow.recorded_performance(uow) == {"predictions_with_outcome": 4, "no_shows": 0}
    uow.no_show.set_outcome(coming[2].appointment_id, "no_show")
    out = noshow.recorded_performance(uow)
    assert (out["predictions_with_outcome"], out["no_shows"]) == (4, 1)
    assert 0 <= out["auc"] <= 1
    assert "brier" in out


def test_evaluating_an_empty_history_is_audited_then_refused(uow: FakeUnitOfWork) -> None:
    with pytest.raises(noshow.NotEnoughHistory):
        noshow.evaluate_model(uow, now=NOW)
    assert uow.audit.events[-1]["details"] == {"purpose": "no_show_evaluation", "returned": 0}
