"""Consents: one patient's ledger history and the state of each purpose (its latest
decision wins, as for the consent gate), and the clinic's coverage by purpose."""

from __future__ import annotations

from fastapi import APIRouter, Response

from neonpro.entrypoints.console import forms
from neonpro.entrypoints.console.session import PREFIX, Form, Session, page
from neonpro.services import consents as svc

router = APIRouter(prefix=f"{PREFIX}/consentimentos", tags=["console"],
                   include_in_schema=False)


def consents(session: Session, form: Form) -> Response:
    """The coverage always; with ``paciente``, that patient's history and states."""
    patient = forms.maybe_id(form, "q:paciente")
    history = svc.consent_history(session.uow(), patient) if patient else []
    states = svc.consent_states(session.uow(), patient) if patient else []
    return session.page("consentimentos.html", titulo="Consentimentos",
                        ativo="consentimentos", paciente=patient or "", historico=history,
                        estados=states, cobertura=svc.consent_coverage(session.uow()))


router.add_api_route("", page(consents), methods=["GET"])
