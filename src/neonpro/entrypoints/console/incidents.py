"""Security incidents (LGPD art. 48, ANPD Resolution 15/2024): the register with each
incident's deadline (3 business days after the clinic learned of it), registering one,
counting the affected patients from the audit trail, recording the communications to the
ANPD and to the patients, containing and closing. Every step is the API's service, audited
alike; descriptions stay internal (never logged, never in the audit trail)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import cast

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from neonpro.domain.errors import ValidationFailed
from neonpro.domain.paging import PageRequest
from neonpro.domain.schemas.incident import Notified
from neonpro.domain.vocabulary import DataCategory, IncidentStatus, RiskLevel
from neonpro.entrypoints.console import forms
from neonpro.entrypoints.console.session import PREFIX, Form, Session, page
from neonpro.services import incidents as svc
from neonpro.services.incidents import AccessScope, IncidentClose, IncidentCreate, Notification

router = APIRouter(prefix=f"{PREFIX}/incidentes", tags=["console"], include_in_schema=False)
DONE = {"novo": "Incidente registrado; o prazo de comunicação está na ficha.",
        "notificar": "Comunicação registrada.", "avaliar": "Titulares afetados recontados.",
        "encerrar": "Situação do incidente atualizada."}


def listing(session: Session, form: Form) -> Response:
    overdue = forms.text(form, "q:atraso") == "1"
    status = forms.maybe_choice(form, "q:situacao", IncidentStatus)
    found = svc.list_incidents(session.uow(), overdue=overdue, status=status,
                               page=PageRequest(limit=200))
    return session.page("incidentes.html", titulo="Incidentes de segurança",
                        ativo="incidentes", linhas=found.items, agora=datetime.now(UTC),
                        categorias=list(DataCategory), riscos=list(RiskLevel),
                        situacoes=list(IncidentStatus),
                        filtro={"atraso": overdue, "situacao": status or ""})


def _to(incident_id: uuid.UUID, done: str) -> Response:
    return RedirectResponse(f"{PREFIX}/incidentes/{incident_id}?feito={done}", status_code=303)


def _categories(form: Form) -> list[DataCategory]:
    return [forms.choice({"c": c}, "c", DataCategory)
            for c in forms.text(form, "categories").split(",") if c]


def register(session: Session, form: Form) -> Response:
    zone = session.clinic.timezone
    data = IncidentCreate(
        detected_at=forms.moment(form, "detected_at", zone) or datetime.now(UTC),
        learned_at=forms.moment(form, "learned_at", zone),
        description=forms.text(form, "description"),
        affected_data_categories=_categories(form),
        affected_patient_count=forms.count(form, "affected_patient_count"),
        risk_assessment=forms.text(form, "risk_assessment") or None,
        risk_level=forms.maybe_choice(form, "risk_level", RiskLevel))
    return _to(svc.register_incident(session.uow(), data).id, "novo")


def detail(session: Session, form: Form) -> Response:
    incident = svc.get_incident(session.uow(), forms.an_id(form, "path:incident_id"))
    now = datetime.now(UTC)
    return session.page("incidente.html", titulo="Incidente de segurança",
                        ativo="incidentes", i=incident, atrasado=incident.is_overdue(now),
                        aviso=DONE.get(forms.text(form, "q:feito")))


def notify(session: Session, form: Form) -> Response:
    """The communication to the ANPD or to the patients, once each."""
    incident_id = forms.an_id(form, "path:incident_id")
    which = forms.text(form, "which")
    if which not in {"anpd", "subjects"}:
        raise ValidationFailed("which", "not one of the choices")
    data = Notification(which=cast("Notified", which),
                        at=forms.moment(form, "at", session.clinic.timezone))
    svc.notify(session.uow(), incident_id, data)
    return _to(incident_id, "notificar")


def assess(session: Session, form: Form) -> Response:
    """Count the patients an actor or an address touched, from the audit trail, and store
    the count and categories on the incident."""
    incident_id = forms.an_id(form, "path:incident_id")
    zone = session.clinic.timezone
    scope = AccessScope(actor_id=forms.maybe_id(form, "actor_id"),
                        ip_address=forms.text(form, "ip") or None,
                        since=forms.moment(form, "since", zone),
                        until=forms.moment(form, "until", zone))
    svc.assess_affected(session.uow(), incident_id, scope, store=True)
    return _to(incident_id, "avaliar")


def close(session: Session, form: Form) -> Response:
    incident_id = forms.an_id(form, "path:incident_id")
    data = IncidentClose(status=forms.text(form, "status") or "closed",
                         mitigation=forms.text(form, "mitigation") or None)
    svc.close_incident(session.uow(), incident_id, data)
    return _to(incident_id, "encerrar")


router.add_api_route("", page(listing), methods=["GET"])
router.add_api_route("/novo", page(register), methods=["POST"])
router.add_api_route("/{incident_id}", page(detail), methods=["GET"])
for _path, _handler in (("notificar", notify), ("avaliar", assess), ("encerrar", close)):
    router.add_api_route(f"/{{incident_id}}/{_path}", page(_handler), methods=["POST"])
