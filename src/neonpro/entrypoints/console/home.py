"""Signing in and out of the console, and the DPO's day ("Hoje")."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from neonpro.adapters.auth import TokenCodec
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import (
    ClinicNotChosen,
    TooManyAttempts,
    Unauthenticated,
    ValidationFailed,
)
from neonpro.domain.paging import PageRequest
from neonpro.domain.vocabulary import ClinicRole, DataSubjectRequestStatus, IncidentStatus
from neonpro.entrypoints.api.deps import OVERSIGHT, actor_of
from neonpro.entrypoints.console import forms, render
from neonpro.entrypoints.console.session import (
    COOKIE,
    LOGIN_COOKIE,
    PREFIX,
    Form,
    Session,
    clear_cookie,
    csrf_ok,
    login_nonce,
    page,
    read_form,
    refuse_role,
    set_cookie,
)
from neonpro.services import auth, incidents, lgpd_requests, retention

router = APIRouter(prefix=PREFIX, tags=["console"], include_in_schema=False)
PENDING = frozenset({DataSubjectRequestStatus.OPEN, DataSubjectRequestStatus.IN_PROGRESS})
SOON = timedelta(days=5)


def _sign_in_page(box: Container, message: str | None = None, status: int = 200,
                  choose: list[tuple[uuid.UUID, str, str]] | None = None,
                  email: str = "") -> Response:
    """The sign-in form; with ``choose``, the account's clinics to pick from (said only
    after the right password) and its e-mail filled in; the password is asked again."""
    nonce = login_nonce()
    answer = render.page(
        "entrar.html", status, titulo="Entrar", csrf=nonce, mensagem=message,
        clinicas=choose or [], email=email,
        aviso="Sua conta pertence a mais de uma clínica: escolha em qual entrar e digite a "
              "senha de novo." if choose else None)
    set_cookie(answer, box, LOGIN_COOKIE, nonce, max_age=3600)
    return answer


@router.get("/entrar")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request.app.state.container)


@router.post("/entrar")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    box: Container = request.app.state.container
    if not csrf_ok(form.get("csrf"), request.cookies.get(LOGIN_COOKIE, "")):
        return _sign_in_page(box, "O formulário expirou ou não veio deste console. Tente de "
                                  "novo.", 403)
    return await run_in_threadpool(_sign_in, request, box, form)


def _choose_clinic(box: Container, choose: ClinicNotChosen, form: Form) -> Response:
    """The right password of an account of several clinics: offer those where it may use
    the console (DPO, admin)."""
    choices = [c for c in choose.clinics if ClinicRole(c[2]) in OVERSIGHT]
    if not choices:
        return _sign_in_page(box, "Sua conta não é do encarregado (DPO) nem da administração "
                                  "em nenhuma das suas clínicas.", 403)
    return _sign_in_page(box, None, 200, choices, form.get("email", "")[:320])


def _sign_in(request: Request, box: Container, form: Form) -> Response:
    """The sign-in service of the API (argon2, throttling, audit), then the role check."""
    address = request.client.host if request.client else None
    anonymous = Actor(uuid.UUID(int=0), "anonymous", ip_address=address,
                      request_id=request.state.request_id,
                      user_agent=request.headers.get("user-agent"))
    tokens: TokenCodec = request.app.state.codec
    try:
        clinic = forms.maybe_id(form, "clinic_id")
    except ValidationFailed:
        return _sign_in_page(box, "O identificador da clínica não é válido.", 422)
    try:
        issued = auth.login(lambda: box.service_uow(anonymous), form.get("email", "")[:320],
                            form.get("password", "")[:1024], clinic, address,
                            limits=box.signin_limits, mint=tokens.mint,
                            passwords=box.passwords)
    except TooManyAttempts as wait:
        return _sign_in_page(box, "Muitas tentativas sem sucesso. Tente de novo em "
                                  f"{wait.retry_after_s} segundos.", 429)
    except ClinicNotChosen as choose:
        return _choose_clinic(box, choose, form)
    except Unauthenticated:
        return _sign_in_page(box, "E-mail ou senha incorretos.", 401)
    principal = tokens.decode(issued.token)
    if principal.role not in OVERSIGHT:
        refusal = refuse_role(request, principal)
        auth.logout(box.admin_uow(principal.clinic_id, actor_of(request, principal)),
                    principal.token_id)
        return render.error(refusal)
    answer = RedirectResponse(PREFIX, status_code=303)
    set_cookie(answer, box, COOKIE, issued.token, max_age=box.settings.token_ttl_minutes * 60)
    answer.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return answer


def sign_out(session: Session, form: Form) -> Response:
    """End the session (as ``POST /auth/logout``: audited, refused from the next request)."""
    auth.logout(session.admin_uow(), session.principal.token_id)
    answer = RedirectResponse(f"{PREFIX}/entrar", status_code=303)
    clear_cookie(answer, session.box)
    return answer


def _retention(session: Session) -> list[tuple[tuple[str, str, str], int]]:
    """What the policies in force would do today (a read on the service login, rolled
    back: no session of a clinic binds a cross-clinic transaction, so the actor goes
    without it; the page's own session was checked before)."""
    actor = replace(session.actor, session_id=None)
    items = retention.plan_retention(session.box, actor, session.clinic_id)
    return sorted(Counter((i.category, i.action, i.reason) for i in items).items())


def today(session: Session, form: Form) -> Response:
    """What is due: requests (15 days), incidents (3 business days), the chain, retention."""
    now = datetime.now(UTC)
    pending = [r for r in lgpd_requests.list_requests(session.uow()) if r.status in PENDING]
    listed = incidents.list_incidents(session.uow(), page=PageRequest(limit=100)).items
    return session.page(
        "hoje.html", titulo="Hoje", ativo="hoje", agora=now, pendentes=pending,
        atrasadas=[r for r in pending if r.due_at < now],
        vencendo=[r for r in pending if now <= r.due_at < now + SOON],
        incidentes=[i for i in listed if i.status != IncidentStatus.CLOSED
                    or i.is_overdue(now)],
        cadeia=session.chain(), verificando=session.chain_running(),
        retencao=_retention(session))


router.add_api_route("/sair", page(sign_out), methods=["POST"])
router.add_api_route("", page(today), methods=["GET"])
