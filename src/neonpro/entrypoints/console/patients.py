"""Finding a patient: the DPO is told a CPF or a name, never a record id.

The search is a POST (with the session's CSRF token), so neither the CPF nor the name
ever lands in a URL, the browser's history or a proxy's access log; the results link to
the other pages by the patient's id. A CPF is looked up through its blind index (exact,
its check digits verified first); a name is the patient list's case- and
accent-insensitive substring search. Each lookup is audited by the service as a read of
patients (``find_patient_by_cpf``, ``search_patients``)."""

from __future__ import annotations

import re
import uuid

from fastapi import APIRouter, Response

from neonpro.domain.errors import DomainError, NotFound, ValidationFailed
from neonpro.domain.paging import PageRequest
from neonpro.domain.schemas.patient import (
    PatientFilters,
    PatientRead,
    PatientSort,
    PatientSortField,
)
from neonpro.entrypoints.console import forms
from neonpro.entrypoints.console.session import PREFIX, Form, Session, page
from neonpro.services import patients as svc

router = APIRouter(prefix=f"{PREFIX}/pacientes", tags=["console"], include_in_schema=False)
SHOWN = 20  # a name matching more patients asks for a longer part of it
MIN_NAME = 3
_CPF_LIKE = re.compile(r"[\d.\-/\s]+")


def _by_cpf(session: Session, raw: str) -> list[PatientRead]:
    found = svc.find_patient_by_cpf(session.uow(), raw)  # a wrong CPF: ValidationFailed
    return [found] if found else []


def _by_name(session: Session, raw: str) -> tuple[list[PatientRead], bool]:
    if len(raw) < MIN_NAME:
        raise ValidationFailed("busca", f"at least {MIN_NAME} characters of the name")
    result = svc.search_patients(
        session.uow(), PatientFilters(name=raw[:200], is_active=None),
        PatientSort(PatientSortField.FULL_NAME), PageRequest(limit=SHOWN + 1, with_total=False))
    return list(result.items[:SHOWN]), len(result.items) > SHOWN


def search_form(session: Session, form: Form) -> Response:
    return session.page("pacientes.html", titulo="Pacientes", ativo="pacientes", busca=False,
                        linhas=[], mais=False)


def search(session: Session, form: Form) -> Response:
    """Patients matching the CPF or the part of the name given in ``busca``."""
    raw = forms.text(form, "busca")
    if not raw:
        raise ValidationFailed("busca", "empty")
    more = False
    if _CPF_LIKE.fullmatch(raw):
        rows = _by_cpf(session, raw)
    else:
        rows, more = _by_name(session, raw)
    return session.page("pacientes.html", titulo="Pacientes", ativo="pacientes", busca=True,
                        linhas=rows, mais=more)


def reference(session: Session, form: Form, name: str) -> uuid.UUID:
    """The patient a form field names: their id, or their CPF (looked up, audited).
    Only for POSTed forms: a CPF must not travel in a URL."""
    raw = forms.text(form, name)
    try:
        return uuid.UUID(raw)
    except ValueError:
        pass
    if not raw or not _CPF_LIKE.fullmatch(raw):
        raise ValidationFailed(name, "not a CPF or a patient id")
    found = _by_cpf(session, raw)
    if not found:
        raise NotFound("patient")
    return found[0].id


def name_of(session: Session, patient_id: uuid.UUID) -> str | None:
    """The patient's name for a page about them (an audited read); None once erased."""
    try:
        return svc.get_patient(session.uow(), patient_id).full_name
    except DomainError:
        return None


router.add_api_route("", page(search_form), methods=["GET"])
router.add_api_route("", page(search), methods=["POST"])
