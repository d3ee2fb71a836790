"""LGPD state rules: which incidents must be notified, how incidents and data-subject
requests may move. Pure data; the services apply them, the repositories filter by them."""

from __future__ import annotations

from neonpro.domain.vocabulary import DataSubjectRequestStatus, IncidentStatus, RiskLevel

NOTIFIABLE: tuple[RiskLevel, ...] = (RiskLevel.HIGH, RiskLevel.CRITICAL)
"""Risk levels that oblige communication to the ANPD and the patients (Res. 15/2024 art. 5);
health data always counts as high, so in a clinic almost every incident is notifiable."""

INCIDENT_TRANSITIONS: dict[str, frozenset[str]] = {
    IncidentStatus.OPEN: frozenset({IncidentStatus.CONTAINED, IncidentStatus.CLOSED}),
    IncidentStatus.CONTAINED: frozenset({IncidentStatus.CLOSED}),
    IncidentStatus.CLOSED: frozenset(),
}
"""A security incident's status graph: open -> contained -> closed, or open -> closed."""

_S = DataSubjectRequestStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    _S.OPEN: frozenset({_S.IN_PROGRESS, _S.FULFILLED, _S.REFUSED}),
    _S.IN_PROGRESS: frozenset({_S.FULFILLED, _S.REFUSED}),
}
"""A data-subject request's status graph; fulfilled and refused are final (absent here)."""

PENDING: tuple[str, ...] = (_S.OPEN.value, _S.IN_PROGRESS.value)
"""Statuses of a request still awaiting its answer (those that can be overdue)."""
