"""The audit trail for admins and the DPO: search, investigate, verify, report."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from pydantic import IPvAnyAddress

from neonpro.domain.audit_reports import AuditFilters
from neonpro.domain.errors import ValidationFailed
from neonpro.domain.schemas._types import Instant
from neonpro.domain.schemas.audit import AuditEvent
from neonpro.domain.schemas.incident import Investigation
from neonpro.domain.vocabulary import AuditAction, RiskLevel
from neonpro.entrypoints.api.deps import OVERSIGHT, Caller, caller_with
from neonpro.entrypoints.api.pages import PageOut
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.queries.compliance import report_html
from neonpro.services import audit as svc

router = APIRouter(route_class=OneHopRoute, prefix="/audit", tags=["audit"])
Who = Annotated[Caller, Depends(caller_with(OVERSIGHT))]


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=30)
    if start >= end:
        raise ValidationFailed("since", "must be before until")
    return start, end


@router.get("/events", response_model=PageOut[AuditEvent])
def search(caller: Who, patient_id: uuid.UUID | None = None, actor_id: uuid.UUID | None = None,
           action: AuditAction | None = None,
           severity: Annotated[list[RiskLevel] | None, Query()] = None,
           since: Instant | None = None, until: Instant | None = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 50,
           cursor: Annotated[str | None, Query(max_length=500)] = None) -> PageOut[AuditEvent]:
    start, end = _window(since, until)
    filters = AuditFilters(patient_id=patient_id, actor_id=actor_id,
                           action=action.value if action else None,
                           risk_levels=tuple(s.value for s in severity or ()),
                           since=start, until=end)
    page = svc.search_audit(caller.uow(), filters, limit, cursor)
    return PageOut[AuditEvent](items=page.items, total=None, next_cursor=page.next_cursor,
                             limit=limit, offset=0)


@router.get("/investigate", response_model=Investigation)
def investigate(caller: Who, actor_id: uuid.UUID | None = None,
                ip: IPvAnyAddress | None = None,
                since: Instant | None = None,
                until: Instant | None = None) -> Investigation:
    """Which patients and data categories an actor or an address touched in a window."""
    if (actor_id is None) == (ip is None):
        raise ValidationFailed("actor_id", "give exactly one of actor_id or ip")
    start, end = _window(since, until)
    return svc.investigate_access(caller.uow(), start, end, actor_id=actor_id,
                                  ip_address=None if ip is None else str(ip))


@router.get("/verify")
def verify(caller: Who) -> dict[str, Any]:
    """Recompute the clinic's audit chain (and its erasure-ledger chain, under
    ``erasure_ledger``); ``ok`` is false with the first broken link of either."""
    return svc.verify_clinic(caller.container.audit_chain, caller.actor, caller.clinic_id)


@router.get("/report", responses={200: {"content": {"text/html": {}}}})
def report(caller: Who, since: Instant | None = None, until: Instant | None = None,
           fmt: Annotated[str, Query(alias="format", pattern="^(json|html)$")] = "json",
           ) -> Any:
    """The compliance report for a period, as JSON or as a readable HTML page."""
    start, end = _window(since, until)
    data = svc.clinic_report(caller.uow(), start, end, caller.container.audit_chain)
    return HTMLResponse(report_html(data)) if fmt == "html" else data
