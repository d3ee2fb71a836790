"""The audit trail for the DPO: search (by actor, address, patient, action, severity,
period), investigation (which patients and data categories an actor or an address touched),
and the chain's verification. Reading the trail is itself audited by the services."""

from __future__ import annotations

from ipaddress import ip_address

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from neonpro.domain.audit_reports import AuditFilters
from neonpro.domain.errors import ValidationFailed
from neonpro.domain.vocabulary import AuditAction, RiskLevel
from neonpro.entrypoints.console import forms
from neonpro.entrypoints.console.session import PREFIX, Form, Session, page
from neonpro.services import audit as svc

router = APIRouter(prefix=f"{PREFIX}/auditoria", tags=["console"], include_in_schema=False)
PAGE_SIZE = 100


def _address(form: Form) -> str | None:
    raw = forms.text(form, "q:ip")
    if not raw:
        return None
    try:
        return str(ip_address(raw))
    except ValueError:
        raise ValidationFailed("ip", "not an address") from None


def search(session: Session, form: Form) -> Response:
    """Events newest first (100 a page, then a cursor); with an actor or an address and
    "investigar", what they touched in the period."""
    first, last, since, until = forms.period(form, session.clinic.timezone)
    actor = forms.maybe_id(form, "q:ator")
    address = _address(form)
    risk = forms.maybe_choice(form, "q:risco", RiskLevel)
    action = forms.maybe_choice(form, "q:acao", AuditAction)
    filters = AuditFilters(patient_id=forms.maybe_id(form, "q:paciente"), actor_id=actor,
                           ip_address=address, action=action.value if action else None,
                           risk_levels=(risk.value,) if risk else (), since=since, until=until)
    cursor = forms.text(form, "q:cursor")[:500] or None
    found = svc.search_audit(session.uow(), filters, PAGE_SIZE, cursor)
    investigation = None
    if forms.text(form, "q:investigar") == "1":
        if (actor is None) == (address is None):
            raise ValidationFailed("actor_id", "give exactly one of actor or address")
        investigation = svc.investigate_access(session.uow(), since, until, actor_id=actor,
                                               ip_address=address)
    query = {k[2:]: v for k, v in form.items() if k.startswith("q:") and k != "q:cursor"}
    return session.page(
        "auditoria.html", titulo="Auditoria", ativo="auditoria", eventos=found.items,
        proximo=found.next_cursor, consulta=query, investigacao=investigation,
        de=first.isoformat(), ate=last.isoformat(), acoes=list(AuditAction),
        riscos=list(RiskLevel), cadeia=session.chain(), verificando=session.chain_running(),
        aviso="Cadeia verificada agora." if forms.text(form, "q:feito") else None)


def verify(session: Session, form: Form) -> Response:
    """Recompute the clinic's chains now (seconds on a large clinic), keep the result."""
    session.verify_chain()
    return RedirectResponse(f"{PREFIX}/auditoria?feito=verificar", status_code=303)


router.add_api_route("", page(search), methods=["GET"])
router.add_api_route("/verificar", page(verify), methods=["POST"])
