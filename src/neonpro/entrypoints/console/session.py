"""The console's session: a cookie holding the sign-in service's token, checked on every
request like a bearer token (signature, live session, role), and a CSRF token per session.

* The cookie is HttpOnly, SameSite=Strict, Secure outside development and tests, scoped to
  ``/console``; it holds the token ``services.auth.login`` issued (argon2, the same
  throttling and audit as ``POST /auth/login``), so signing out, a password change or a
  membership removed end it on the next request, as for the API.
* Only the DPO and the admin may use the console (the API's ``OVERSIGHT``); any other role
  gets the 403 page, recorded in the audit trail as the API records its refusals.
* Every POST carries ``csrf``, an HMAC of the session's token: a page of another site can
  neither read it nor compute it. A POST without it (a forged cross-site form) is refused
  with a 403 page and recorded. The sign-in form, before any session, pairs a random value
  in a cookie of its own with the same value in the form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qs

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from neonpro.adapters.auth import Principal, TokenCodec
from neonpro.bootstrap import Container
from neonpro.config import Environment
from neonpro.domain.actors import Actor
from neonpro.domain.errors import (
    DomainError,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas.clinic import ClinicRead
from neonpro.entrypoints.api.deps import OVERSIGHT, actor_of, audit_refusal
from neonpro.entrypoints.console import render
from neonpro.entrypoints.console.verification import ChainStatus, Verified
from neonpro.services import clinics

PREFIX = "/console"
COOKIE = "neonpro_console"
LOGIN_COOKIE = "neonpro_console_login"
SIGN_IN = f"{PREFIX}/entrar"
Form = dict[str, str]


@dataclass
class Session:
    """A signed-in DPO or admin: their actor and units of work in their clinic."""

    request: Request
    principal: Principal
    box: Container
    csrf: str

    @cached_property
    def actor(self) -> Actor:
        return actor_of(self.request, self.principal)

    @property
    def clinic_id(self) -> uuid.UUID:
        return self.principal.clinic_id

    def uow(self) -> UnitOfWork:
        return self.box.uow(self.principal.clinic_id, self.actor)

    def admin_uow(self) -> UnitOfWork:
        return self.box.admin_uow(self.principal.clinic_id, self.actor)

    @cached_property
    def clinic(self) -> ClinicRead:
        return clinics.get_clinic(self.uow())

    def chain(self) -> Verified | None:
        """The clinic's last chain verification (refreshed in the background when stale)."""
        status: ChainStatus = self.request.app.state.console_chain
        return status.latest(self.box, self.actor, self.clinic_id)

    def chain_running(self) -> bool:
        status: ChainStatus = self.request.app.state.console_chain
        return status.running(self.clinic_id)

    def verify_chain(self) -> Verified:
        status: ChainStatus = self.request.app.state.console_chain
        return status.verify_now(self.box, self.actor, self.clinic_id)

    def page(self, template: str, status: int = 200, **context: object) -> Response:
        """``template`` with the session's clinic, time zone and CSRF token."""
        return render.page(template, status, sessao=self, csrf=self.csrf,
                           zona=self.clinic.timezone, **context)


def csrf_for(token: str) -> str:
    """The session's CSRF token: an HMAC keyed by the (secret, HttpOnly) session token."""
    key = hashlib.sha256(token.encode()).digest()
    return hmac.new(key, b"neonpro-console-csrf", hashlib.sha256).hexdigest()


def secure_cookies(box: Container) -> bool:
    return box.settings.environment not in {Environment.DEVELOPMENT, Environment.TEST}


def set_cookie(response: Response, box: Container, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True,
                        samesite="strict", secure=secure_cookies(box))


def clear_cookie(response: Response, box: Container) -> None:
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict",
                           secure=secure_cookies(box))


def login_nonce() -> str:
    return secrets.token_urlsafe(32)


def refuse_role(request: Request, principal: Principal) -> Forbidden:
    """A role other than DPO or admin: refused, and the refusal audited (as the API does)."""
    refusal = Forbidden(f"the {principal.role.value} role may not use the console")
    audit_refusal(request, principal, refusal, allowed=OVERSIGHT)
    return refusal


def open_session(request: Request) -> Session:
    """The signed-in caller of this request (Unauthenticated, or Forbidden for a role)."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthenticated("no console session")
    tokens: TokenCodec = request.app.state.codec
    principal = tokens.decode(token)
    request.state.principal = principal
    box: Container = request.app.state.container
    if not box.session_live(principal.token_id, principal.user_id, principal.clinic_id,
                            principal.role.value):
        raise Unauthenticated("invalid or expired session")
    if principal.role not in OVERSIGHT:
        raise refuse_role(request, principal)
    return Session(request, principal, box, csrf_for(token))


def csrf_ok(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def refuse_forgery(request: Request, session: Session) -> Response:
    """A POST without the session's CSRF token: a 403 page, the refusal audited."""
    refusal = Forbidden("missing or wrong CSRF token")
    audit_refusal(request, session.principal, refusal, fields=["csrf"])
    return render.page("erro.html", 403, titulo="Formulário recusado",
                       mensagem="O formulário expirou ou não veio deste console. Abra a "
                                "página de novo e repita a ação.")


async def read_form(request: Request) -> Form:
    """An url-encoded form's fields (the first value of each); anything else is empty."""
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    # a field given more than once (checkboxes) keeps every value, comma-separated
    return {k: ",".join(v) for k, v in parse_qs(body, keep_blank_values=True).items()}


Handler = Callable[[Session, Form], Response]


def _signed_out(request: Request) -> Response:
    answer = RedirectResponse(SIGN_IN, status_code=303)
    clear_cookie(answer, request.app.state.container)
    return answer


def _serve(request: Request, handler: Handler, form: Form) -> Response:
    try:
        session = open_session(request)
    except Unauthenticated:
        return _signed_out(request)
    except DomainError as exc:
        return render.error(exc)
    if request.method == "POST" and not csrf_ok(form.get("csrf"), session.csrf):
        return refuse_forgery(request, session)
    return _handle(session, handler, form)


def _handle(session: Session, handler: Handler, form: Form) -> Response:
    try:
        return handler(session, form)
    except Unauthenticated:
        return _signed_out(session.request)
    except ValidationError as exc:  # a schema the services take, built from the form
        return _refused(session, invalid(exc))
    except DomainError as exc:
        return _refused(session, exc)


def invalid(exc: ValidationError) -> ValidationFailed:
    """A schema's validation error as the field it names (the value is never repeated)."""
    errors = exc.errors(include_input=False)
    location = errors[0].get("loc", ()) if errors else ()
    return ValidationFailed(str(location[0]) if location else "form", "invalid")


def _refused(session: Session, exc: DomainError) -> Response:
    return render.error(exc, sessao=session, csrf=session.csrf, zona=session.clinic.timezone)


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A console endpoint: the form read on the event loop, then one hand-off to the thread
    pool for the session check and the handler; refusals become Portuguese pages."""

    async def endpoint(request: Request) -> Response:
        form = await read_form(request) if request.method == "POST" else {}
        form.update({f"path:{k}": str(v) for k, v in request.path_params.items()})
        for key, value in request.query_params.items():
            form.setdefault(f"q:{key}", value)
        return await run_in_threadpool(_serve, request, handler, form)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _unknown(session: Session, form: Form) -> Response:
    """An address the console does not have (``/console/`` is the home page)."""
    rest = form.get("path:rest", "")
    if not rest.strip("/"):
        return RedirectResponse(PREFIX, status_code=303)
    if rest.endswith("/") and session.request.method == "GET":  # the page without the slash
        query = session.request.url.query
        return RedirectResponse(f"{PREFIX}/{rest.rstrip('/')}" + (f"?{query}" if query else ""),
                                status_code=303)
    raise NotFound("page")


unknown = page(_unknown)
