"""The audit use cases against in-memory fakes: reading the trail is itself audited, a
clinic's verification joins its audit and erasure-ledger chains, the compliance report
carries the audit chain's verification, and refusals go through the chain's port."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.audit_reports import (
    AuditFilters,
    ChainReport,
    Checkpoint,
    CheckpointResult,
    PruneResult,
)
from neonpro.domain.errors import DomainError, Forbidden
from neonpro.domain.schemas.audit import AuditEvent
from neonpro.domain.schemas.incident import Investigation
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel
from neonpro.services import audit
from tests.unit.fakes import FakeUnitOfWork

CLINIC = uuid.uuid4()
DPO = Actor(uuid.uuid4(), "dpo")
NOW = datetime(2031, 5, 2, tzinfo=UTC)


class FakeChain:
    """``AuditChain`` answering ``reports``; every call kept in ``calls``."""

    def __init__(self, reports: list[ChainReport] | None = None) -> None:
        self.reports = reports or []
        self.calls: list[tuple[str, Any]] = []

    def seal(self, actor: Actor) -> int:
        self.calls.append(("seal", actor))
        return 3

    def read_checkpoints(self, path: Path) -> list[Checkpoint]:
        return []

    def verify(self, actor: Actor, clinic: uuid.UUID | None = None,
               checkpoints: list[Checkpoint] | None = None) -> list[ChainReport]:
        self.calls.append(("verify", (actor, clinic)))
        return [r for r in self.reports if clinic in (None, r.clinic_id)]

    def checkpoint(self, directory: Path | None = None,
                   path: Path | None = None) -> CheckpointResult:
        return CheckpointResult(path, len(self.reports))

    def prune(self, actor: Actor, archive_dir: Path, clinic: uuid.UUID | None = None, *,
              dry_run: bool = False) -> list[PruneResult]:
        return []

    def record_refusal(self, actor: Actor, clinic_id: uuid.UUID | None, refusal: DomainError,
                       *, resource_type: str | None = None,
                       resource_id: uuid.UUID | None = None,
                       patient_id: uuid.UUID | None = None,
                       risk: RiskLevel = RiskLevel.MEDIUM,
                       details: dict[str, Any] | None = None) -> None:
        self.calls.append(("refusal", (clinic_id, refusal.code, resource_type, risk, details)))


def _row(at: datetime, action: str = "VIEW") -> AuditEvent:
    return AuditEvent(id=uuid.uuid4(), seq=None, occurred_at=at, actor_id=DPO.id, actor_role="dpo",
                      action=action, resource_type=None, resource_id=None, status="success",
                      risk_level="low", ip_address=None, request_id=None, details={})


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(DPO, CLINIC)


def test_a_search_of_the_trail_is_itself_audited(uow: FakeUnitOfWork) -> None:
    rows = [_row(NOW - timedelta(hours=h)) for h in range(3)]
    for row in [*rows, _row(NOW, "EXPORT")]:
        uow.audit_reports.rows[row.id] = row
        uow.audit_reports.clinic_of[row.id] = CLINIC
    patient = uuid.uuid4()
    page = audit.search_audit(uow, AuditFilters(patient_id=patient, action="VIEW"), limit=2)
    assert [e.id for e in page.items] == [rows[0].id, rows[1].id]
    [event] = uow.audit.events
    assert (event["action"], event["resource_type"], event["patient_id"]) == (
        AuditAction.VIEW, AuditResource.AUDIT_EVENTS, patient)
    assert event["details"] == {"returned": 2}
    assert uow.commits == 1


def test_an_investigation_is_audited_at_medium_risk(uow: FakeUnitOfWork) -> None:
    actor = uuid.uuid4()
    uow.trail.found[actor] = Investigation(events=7)
    result = audit.investigate_access(uow, NOW - timedelta(days=1), NOW, actor_id=actor)
    assert result.events == 7
    [event] = uow.audit.events
    assert event["risk"] is RiskLevel.MEDIUM
    assert event["details"] == {"investigation": True, "events": 7}


def test_a_clinics_verification_joins_its_two_chains() -> None:
    other = uuid.uuid4()
    ok = audit.verify_clinic(FakeChain([ChainReport(CLINIC, sealed=5, head_seq=5)]), DPO,
                             CLINIC)
    assert (ok["ok"], ok["sealed"], "erasure_ledger" in ok) == (True, 5, False)
    broken = FakeChain([ChainReport(CLINIC, sealed=5, head_seq=5),
                        ChainReport(CLINIC, broken_at=2, reason="hash",
                                    chain="erasure_ledger"),
                        ChainReport(other, broken_at=1, reason="hash")])
    out = audit.verify_clinic(broken, DPO, CLINIC)
    assert out["ok"] is False
    assert out["erasure_ledger"]["broken_at"] == 2
    empty = audit.verify_clinic(FakeChain(), DPO, CLINIC)
    assert empty == {"clinic_id": str(CLINIC), "ok": True}


def test_the_compliance_report_carries_the_audit_chains_verification(
        uow: FakeUnitOfWork) -> None:
    chain = FakeChain([ChainReport(CLINIC, chain="erasure_ledger", broken_at=1),
                       ChainReport(CLINIC, sealed=9, head_seq=9)])
    report = audit.clinic_report(uow, NOW - timedelta(days=30), NOW, chain)
    assert report["audit_chain"]["sealed"] == 9
    assert ("verify", (DPO, CLINIC)) in chain.calls
    [event] = uow.audit.events
    assert event["action"] is AuditAction.EXPORT
    assert event["resource_type"] == AuditResource.COMPLIANCE_REPORT


def test_a_refusal_is_recorded_through_the_chain() -> None:
    chain = FakeChain()
    audit.record_denial(chain, DPO, CLINIC, Forbidden("no"), resource_type="patients",
                        risk=RiskLevel.HIGH, details={"attempted": "GET /patients"})
    assert chain.calls == [("refusal", (CLINIC, "forbidden", "patients", RiskLevel.HIGH,
                                        {"attempted": "GET /patients"}))]
    assert audit.seal(chain, DPO) == 3
