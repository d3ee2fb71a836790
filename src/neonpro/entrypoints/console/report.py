"""The compliance report as a page, printable to hand over (the print stylesheet drops
the navigation and forms): the clinic and its CNPJ, the period in the clinic's local time,
when it was generated, and each check with what it means and its result, in Portuguese.

The audit chain's result is the console's last verification (verification.py), made now
if there is none yet; the rest is ``services.audit.compliance_report`` (audited as an
EXPORT of the report)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Response

from neonpro.entrypoints.console import forms
from neonpro.entrypoints.console.session import PREFIX, Form, Session, page
from neonpro.services import audit as svc

router = APIRouter(prefix=f"{PREFIX}/relatorio", tags=["console"], include_in_schema=False)
CNPJ_DIGITS = 14


@dataclass(frozen=True)
class Late:
    kind: str
    due_at: datetime


def cnpj(value: str | None) -> str:
    digits = "".join(c for c in value or "" if c.isdigit())
    if len(digits) != CNPJ_DIGITS:
        return value or "não informado"
    return f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"


def _requests(report: dict[str, Any]) -> dict[str, Any]:
    dsr = report["data_subject_requests"]
    late = [Late(r["kind"], datetime.fromisoformat(r["due_at"])) for r in dsr["late"]]
    return {"total": int(dsr["total"]), "no_prazo": int(dsr["on_time"]), "atrasadas": late}


def report(session: Session, form: Form) -> Response:
    first, last, since, until = forms.period(form, session.clinic.timezone)
    chain = session.chain() or session.verify_chain()
    data = svc.compliance_report(session.uow(), since, until, chain.report)
    security = data["security_events_by_severity"]
    return session.page(
        "relatorio.html", titulo="Relatório de conformidade LGPD", ativo="relatorio",
        clinica=session.clinic, cnpj=cnpj(session.clinic.cnpj), inicio=since,
        fim=until - timedelta(seconds=1), de=first.isoformat(), ate=last.isoformat(),
        gerado=datetime.now(UTC),
        acessos=sorted(data["accesses_by_role"].items()), exportacoes=int(data["exports"]),
        consentimentos=data["consents"], solicitacoes=_requests(data),
        seguranca=[(level, int(security.get(level, 0)))
                   for level in ("critical", "high", "medium", "low")],
        retencao=int(data["retention_actions"]), cadeia=chain,
        verificando=session.chain_running())


router.add_api_route("", page(report), methods=["GET"])
