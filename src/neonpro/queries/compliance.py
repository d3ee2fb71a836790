"""The compliance report for a clinic and a period (JSON, and a readable HTML page)."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

SECURITY_ACTIONS = ("LOGIN_FAILED", "PERMISSION_DENIED", "EXPORT", "LEGAL_HOLD_READ",
                    "INCIDENT", "KEY_ROTATION")


def _count_by(conn: Connection, sql: str, params: dict[str, Any]) -> dict[str, int]:
    rows: list[Any] = list(conn.execute(text(sql), params).all())
    return {str(k): int(v) for k, v in rows}


def compliance_report(conn: Connection, clinic_id: uuid.UUID, since: datetime, until: datetime,
                      chain: dict[str, Any] | None = None) -> dict[str, Any]:
    """Accesses, exports, consents, data-subject requests, security events, retention,
    and the audit chain's status (``chain``: a verify report, given by the caller)."""
    p = {"c": clinic_id, "since": since, "until": until}
    window = "clinic_id = :c AND occurred_at >= :since AND occurred_at < :until"
    accesses = _count_by(conn, "SELECT coalesce(actor_role, 'unknown'), count(*) FROM "  # noqa: S608
                         f"audit_events WHERE {window} AND action = 'VIEW' GROUP BY 1", p)
    exports: int = conn.execute(text(
        f"SELECT count(*) FROM audit_events WHERE {window} AND action = 'EXPORT'"),  # noqa: S608
        p).scalar_one()
    consents = _count_by(conn, "SELECT status, count(*) FROM consent_records WHERE "
                         "clinic_id = :c AND created_at >= :since AND created_at < :until "
                         "GROUP BY 1", p)
    requests = [dict(r._mapping) for r in conn.execute(text(  # noqa: SLF001
        "SELECT id, kind, status, received_at, due_at, fulfilled_at, "
        "CASE WHEN fulfilled_at IS NOT NULL THEN fulfilled_at <= due_at "
        "     ELSE now() <= due_at END AS on_time "
        "FROM data_subject_requests WHERE clinic_id = :c AND received_at >= :since "
        "AND received_at < :until ORDER BY received_at"), p)]
    security = _count_by(conn, "SELECT risk_level, count(*) FROM audit_events WHERE "  # noqa: S608
                         f"{window} AND (action = ANY(:sec) OR status <> 'success' "
                         "OR risk_level IN ('high', 'critical')) GROUP BY 1",
                         {**p, "sec": list(SECURITY_ACTIONS)})
    retention: int = conn.execute(text(
        f"SELECT count(*) FROM audit_events WHERE {window} AND action = 'RETENTION'"),  # noqa: S608
        p).scalar_one()
    return {
        "clinic_id": str(clinic_id),
        "period": {"from": since.isoformat(), "to": until.isoformat()},
        "generated_at": datetime.now(UTC).isoformat(),
        "accesses_by_role": accesses,
        "exports": int(exports),
        "consents": {k: consents.get(k, 0) for k in ("granted", "revoked", "expired")},
        "data_subject_requests": {
            "total": len(requests),
            "on_time": sum(1 for r in requests if r["on_time"]),
            "late": [{"id": str(r["id"]), "kind": r["kind"], "due_at": r["due_at"].isoformat()}
                     for r in requests if not r["on_time"]],
        },
        "security_events_by_severity": security,
        "retention_actions": int(retention),
        "audit_chain": chain or {},
    }


def report_html(report: dict[str, Any]) -> str:
    """The same report as a self-contained HTML page (every value escaped)."""
    def rows(data: dict[str, Any]) -> str:
        return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in data.items())

    dsr = report["data_subject_requests"]
    chain = report["audit_chain"]
    sections = [
        ("Accesses by role", rows(report["accesses_by_role"]) or "<tr><td>none</td></tr>"),
        ("Exports", rows({"exports": report["exports"]})),
        ("Consents", rows(report["consents"])),
        ("Data-subject requests", rows({"total": dsr["total"], "on time": dsr["on_time"],
                                        "late": len(dsr["late"])})),
        ("Security events by severity",
         rows(report["security_events_by_severity"]) or "<tr><td>none</td></tr>"),
        ("Retention actions", rows({"actions": report["retention_actions"]})),
        ("Audit chain", rows(chain) if chain else "<tr><td>not verified</td></tr>"),
    ]
    body = "".join(f"<h2>{html.escape(t)}</h2><table>{r}</table>" for t, r in sections)
    period = report["period"]
    title = f"Compliance report {report['clinic_id']} {period['from']} - {period['to']}"
    return (f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
            "collapse}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>"
            f"<h1>{html.escape(title)}</h1>{body}</html>")
