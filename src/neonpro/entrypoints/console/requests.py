"""Data-subject requests (LGPD art. 18): list and filter, register, open one, verify the
requester's identity, start, answer with an export, fulfil, refuse with a reason. Every
step is the service the API calls, so the audit trail records it the same way."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from neonpro.domain.erasure import Decision
from neonpro.domain.errors import DomainError, ValidationFailed
from neonpro.domain.schemas.dsr import DataSubjectRequestRead
from neonpro.domain.vocabulary import (
    DataSubjectRequestKind,
    DataSubjectRequestStatus,
    ExportFormat,
)
from neonpro.entrypoints.console import erasure_answer, forms, patients
from neonpro.entrypoints.console.labels import label
from neonpro.entrypoints.console.session import PREFIX, Form, Session, page
from neonpro.services import erasure
from neonpro.services import lgpd_requests as svc
from neonpro.services.lgpd_requests import RequestFulfil, RequestOpen, RequestRefuse

router = APIRouter(prefix=f"{PREFIX}/solicitacoes", tags=["console"], include_in_schema=False)
PENDING = frozenset({DataSubjectRequestStatus.OPEN, DataSubjectRequestStatus.IN_PROGRESS})
DONE = {"verificar": "Identidade do titular verificada.", "iniciar": "Atendimento iniciado.",
        "eliminar": "Dados do titular eliminados conforme a lei; solicitação atendida.",
        "atender": "Solicitação atendida.", "recusar": "Solicitação recusada.",
        "nova": "Solicitação registrada; prazo de 15 dias a partir do recebimento."}


def listing(session: Session, form: Form) -> Response:
    """The clinic's requests by due date; filters: status, overdue, patient."""
    status = forms.maybe_choice(form, "q:situacao", DataSubjectRequestStatus)
    overdue = forms.text(form, "q:atraso") == "1"
    patient = forms.maybe_id(form, "q:paciente")
    rows = svc.list_requests(session.uow(), overdue=overdue, status=status, patient_id=patient)
    return session.page("solicitacoes.html", titulo="Solicitações de titulares",
                        ativo="solicitacoes", linhas=rows, agora=datetime.now(UTC),
                        situacoes=list(DataSubjectRequestStatus),
                        tipos=list(DataSubjectRequestKind),
                        filtro={"situacao": status or "", "atraso": overdue,
                                "paciente": patient or ""})


def _to(request_id: uuid.UUID, done: str) -> Response:
    return RedirectResponse(f"{PREFIX}/solicitacoes/{request_id}?feito={done}", status_code=303)


def register(session: Session, form: Form) -> Response:
    """A request received at the desk, by mail or by phone: due 15 days after receipt."""
    data = RequestOpen(patient_id=patients.reference(session, form, "patient_id"),
                       kind=forms.choice(form, "kind", DataSubjectRequestKind),
                       received_at=forms.moment(form, "received_at", session.clinic.timezone))
    return _to(svc.open_request(session.uow(), data).id, "nova")


def _plan(session: Session, request: DataSubjectRequestRead) -> list[Decision]:
    """What erasing would do, for a pending deletion request whose patient is still there."""
    if request.kind != DataSubjectRequestKind.DELETION or request.status not in PENDING:
        return []
    try:
        return erasure.plan_erasure(session.uow(), request.patient_id)
    except DomainError:  # erased already (or never visible): nothing left to plan
        return []


def _done(session: Session, request: DataSubjectRequestRead,
          ) -> tuple[list[Decision], str | None]:
    """A fulfilled deletion request's erasure (its decisions, from the ledger) and the
    answer sent, rebuilt (:mod:`erasure_answer`) and shown only when it hashes to what the
    request recorded."""
    if request.kind != DataSubjectRequestKind.DELETION or request.fulfilled_at is None:
        return [], None
    try:
        decisions = svc.erasure_of_request(session.uow(), request.id) or []
    except (KeyError, ValueError):  # an entry of a vocabulary this code no longer has
        return [], None
    for answer in erasure_answer.candidates(decisions, request.fulfilled_at,
                                            session.clinic.timezone) if decisions else ():
        if hashlib.sha256(answer.encode()).hexdigest() == request.response_sha256:
            return decisions, answer
    return decisions, None  # answered otherwise (the API, with a text of its own)


def _detail_page(session: Session, request: DataSubjectRequestRead,
                 aviso: str | None) -> Response:
    now = datetime.now(UTC)
    decisions, answer = _done(session, request)
    return session.page(
        "solicitacao.html", titulo=f"Solicitação: {label(request.kind)}",
        ativo="solicitacoes", r=request, titular=patients.name_of(session, request.patient_id),
        pendente=request.status in PENDING,
        atrasada=request.status in PENDING and request.due_at < now,
        exportavel=request.kind in svc.EXPORTABLE,
        eliminar=request.kind == DataSubjectRequestKind.DELETION,
        plano=_plan(session, request), decisoes=decisions, resposta_eliminacao=answer,
        aviso=aviso)


def detail(session: Session, form: Form) -> Response:
    request = svc.get_request(session.uow(), forms.an_id(form, "path:request_id"))
    return _detail_page(session, request, DONE.get(forms.text(form, "q:feito")))


def erase(session: Session, form: Form) -> Response:
    """A deletion request answered: the patient erased as the law allows (deleted or
    anonymized, the medical record blocked under its hold) and the request fulfilled with
    the hash of the answer shown, in one transaction; only a pending deletion request with
    the identity verified, and with the DPO's explicit confirmation."""
    request_id = forms.an_id(form, "path:request_id")
    if forms.text(form, "confirmo") != "1":
        svc.get_request(session.uow(), request_id)  # another clinic's: 404, not 422
        raise ValidationFailed("confirmo", "the erasure must be confirmed")
    zone = session.clinic.timezone
    fulfilled, _, _ = svc.fulfil_by_erasure(
        session.admin_uow(), request_id,
        lambda decisions, at: erasure_answer.write(decisions, at, zone))
    return _to(fulfilled.id, "eliminar")


def verify(session: Session, form: Form) -> Response:
    request_id = forms.an_id(form, "path:request_id")
    svc.verify_identity(session.uow(), request_id)
    return _to(request_id, "verificar")


def start(session: Session, form: Form) -> Response:
    request_id = forms.an_id(form, "path:request_id")
    svc.start_request(session.uow(), request_id)
    return _to(request_id, "iniciar")


def export(session: Session, form: Form) -> Response:
    """The patient's data as JSON (or FHIR) for this request: downloaded by the DPO to
    send, its SHA-256 kept on the request (which moves to in progress), audited EXPORT."""
    request_id = forms.an_id(form, "path:request_id")
    fmt = forms.maybe_choice(form, "format", ExportFormat) or ExportFormat.JSON
    request = svc.get_request(session.uow(), request_id)
    result = svc.export_patient(session.uow(), request.patient_id, fmt, request_id=request_id)
    return Response(result.content, media_type=result.media_type, headers={
        "Content-Disposition": f'attachment; filename="{result.filename}"',
        "X-Content-SHA256": result.sha256, "Cache-Control": "no-store"})


def fulfil(session: Session, form: Form) -> Response:
    """Close as answered: the answer's text is hashed (not stored), or the export's hash
    is kept."""
    request_id = forms.an_id(form, "path:request_id")
    answer = forms.text(form, "response")
    svc.fulfil_request(session.uow(), request_id,
                       RequestFulfil(response=answer) if answer else None)
    return _to(request_id, "atender")


def refuse(session: Session, form: Form) -> Response:
    request_id = forms.an_id(form, "path:request_id")
    reason = forms.text(form, "reason")
    if not reason or len(reason) > 2000:  # noqa: PLR2004  (RequestRefuse's bound)
        raise ValidationFailed("reason", "required, at most 2000 characters")
    svc.refuse_request(session.uow(), request_id, RequestRefuse(reason=reason))
    return _to(request_id, "recusar")


router.add_api_route("", page(listing), methods=["GET"])
router.add_api_route("/nova", page(register), methods=["POST"])
router.add_api_route("/{request_id}", page(detail), methods=["GET"])
for _path, _handler in (("verificar", verify), ("iniciar", start), ("exportar", export),
                        ("eliminar", erase), ("atender", fulfil), ("recusar", refuse)):
    router.add_api_route(f"/{{request_id}}/{_path}", page(_handler), methods=["POST"])
