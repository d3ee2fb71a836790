"""What a request with an Idempotency-Key finds (services/idempotency.py), against the
in-memory key store: each outcome of ``begin``'s decision table, and that an attempt that
lost its key can no longer keep an answer. Leases and restarts are the fake's; the
PostgreSQL behaviour under concurrency is tested in tests/integration and tests/reliability.
"""

from __future__ import annotations

import uuid

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.idempotency import Claim
from neonpro.domain.vocabulary import AuditAction
from neonpro.services import idempotency as svc
from tests.unit.fakes import FakeUnitOfWork

KEY, REQUEST, OTHER_REQUEST = b"k" * 32, b"r" * 32, b"o" * 32
LEASE, TTL = 30.0, 24


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(Actor(uuid.uuid4(), "receptionist", request_id="req-1"), uuid.uuid4())


def begin(uow: FakeUnitOfWork, request: bytes = REQUEST, *, lease: float = LEASE,
          ttl: int = TTL) -> svc.Begun:
    return svc.begin(uow, KEY, request, lease, ttl)


def claimed(uow: FakeUnitOfWork, **kw: float) -> Claim:
    outcome = begin(uow, **kw)  # type: ignore[arg-type]
    assert isinstance(outcome, svc.Claimed)
    return outcome.claim


def test_a_free_key_is_claimed_and_a_duplicate_waits(uow: FakeUnitOfWork) -> None:
    claimed(uow)
    assert isinstance(begin(uow), svc.InFlight)
    assert isinstance(begin(uow, OTHER_REQUEST), svc.Mismatch)


def test_the_kept_answer_is_replayed_until_an_erasure_scrubs_it(uow: FakeUnitOfWork) -> None:
    patient = uuid.uuid4()
    claim = claimed(uow)
    assert svc.finish(uow, claim, 201, "application/json", '{"id": 1}', [patient])
    assert begin(uow) == svc.Replay(201, "application/json", '{"id": 1}')
    with uow:
        assert uow.idempotency.scrub([uuid.uuid4()]) == 0  # names someone else
        assert uow.idempotency.scrub([patient]) == 1
        uow.commit()
    assert isinstance(begin(uow), svc.Scrubbed)


def test_a_claim_from_before_a_restart_is_taken_over_and_its_attempt_loses_the_key(
        uow: FakeUnitOfWork) -> None:
    first = claimed(uow)
    uow.idempotency.restart()
    second = claimed(uow)
    assert second.claim != first.claim
    assert not svc.finish(uow, first, 200, None, "late", [])
    assert svc.finish(uow, second, 200, None, "kept", [])
    assert begin(uow) == svc.Replay(200, None, "kept")


def test_a_lapsed_lease_is_taken_over_but_a_live_one_is_not(uow: FakeUnitOfWork) -> None:
    claimed(uow, lease=-1.0)  # its lease is already over
    assert isinstance(begin(uow), svc.Claimed)
    assert isinstance(begin(uow), svc.InFlight)  # the new claim's lease is running


def test_work_that_committed_without_an_answer_is_not_done_again(uow: FakeUnitOfWork) -> None:
    claim = claimed(uow)
    with uow:
        uow.audit.record(AuditAction.CREATE, "patient", "p-1")
        uow.audit.record(AuditAction.VIEW, "patient", "p-1")  # a read changes nothing
        uow.idempotency.mark_committed(claim)
        uow.commit()
    assert isinstance(begin(uow), svc.InFlight)  # its attempt may still keep the answer
    uow.idempotency.restart()  # ... but it ended without
    assert begin(uow) == svc.Applied([{"type": "patient", "id": "p-1", "action": "CREATE"}])


def test_an_expired_key_starts_over_even_for_another_request(uow: FakeUnitOfWork) -> None:
    claim = claimed(uow, ttl=-1)
    assert svc.finish(uow, claim, 200, None, "old", [])
    assert isinstance(begin(uow, OTHER_REQUEST), svc.Claimed)


def test_a_released_key_is_free_again_but_only_its_holder_releases_it(
        uow: FakeUnitOfWork) -> None:
    claim = claimed(uow)
    svc.release(uow, Claim(claim.clinic_id, claim.key_hash, uuid.uuid4()))  # not the holder
    assert isinstance(begin(uow), svc.InFlight)
    svc.release(uow, claim)
    assert isinstance(begin(uow, OTHER_REQUEST), svc.Claimed)


def test_keys_are_per_clinic(uow: FakeUnitOfWork) -> None:
    claimed(uow)
    other = FakeUnitOfWork(uow.actor, uuid.uuid4(), store=uow.store)
    assert isinstance(begin(other, OTHER_REQUEST), svc.Claimed)
