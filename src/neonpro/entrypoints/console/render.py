"""Jinja2 templates of the console, its security headers and its error pages.

Every page is rendered with autoescaping on; values reach the templates as the services
return them and are formatted by the filters of :mod:`labels` (dates in the clinic's time
zone, Portuguese labels, never a Python repr)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from neonpro.domain import errors as e
from neonpro.entrypoints.api.problems import STATUS
from neonpro.entrypoints.console import labels

TEMPLATES = Path(__file__).parent / "templates"
# the console's own assets only: no CDN, no inline script (the print button is console.js)
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@pass_context
def _local(context: Context, value: Any) -> str:
    return labels.local(value, context.get("zona") or labels.DEFAULT_ZONE)


@pass_context
def _day(context: Context, value: Any) -> str:
    return labels.day(value, context.get("zona") or labels.DEFAULT_ZONE)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(rotulo=labels.label, simnao=labels.yes_no, data=_local, dia=_day,
                       numero=labels.number, cpf_parcial=labels.partial_cpf,
                       situacao_incidente=labels.incident_status)
    return env


ENV = _environment()


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` (``sessao``, ``zona``, ``csrf``... as given)."""
    context.setdefault("sessao", None)
    context.setdefault("csrf", "")
    context.setdefault("zona", labels.DEFAULT_ZONE)
    context.setdefault("ativo", "")
    context.setdefault("aviso", None)
    context.setdefault("mensagem", None)
    body = ENV.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


FIELDS = {
    "patient_id": "paciente", "reason": "motivo", "response": "resposta enviada",
    "response_sha256": "resposta enviada", "received_at": "data de recebimento",
    "request_id": "solicitação", "detected_at": "detectado em", "learned_at": "conhecido em",
    "description": "descrição", "mitigation": "medidas adotadas", "since": "início",
    "until": "fim", "actor_id": "usuário", "ip": "endereço IP", "at": "data",
    "identity_verified_at": "verificação de identidade", "kind": "tipo",
    "affected_patient_count": "titulares afetados", "risk_level": "nível de risco",
    "email": "e-mail", "password": "senha", "closed_at": "encerrado em",
    "busca": "CPF ou nome", "cpf": "CPF", "paciente": "paciente",
    "confirmo": "confirmação da eliminação",
}
MESSAGES = {
    e.NotFound: "Registro não encontrado (ou pertence a outra clínica).",
    e.InvalidTransition: "Esta ação não é possível no estado atual do registro.",
    e.Conflict: "A ação conflita com o estado atual do registro.",
    e.Forbidden: "Seu perfil não tem acesso a esta página. O console é do encarregado "
                 "(DPO) e da administração; a recusa foi registrada na trilha de auditoria.",
    e.Gone: "O registro foi eliminado ou anonimizado.",
    e.ConsentRequired: "Falta o consentimento do titular para esta finalidade.",
}


# refusals with a sentence of their own: (class, the field of a Conflict or the entity of
# a NotFound) -> sentence
SPECIFIC: dict[tuple[type[e.DomainError], str], str] = {
    (e.NotFound, "patient"): "Paciente não encontrado nesta clínica.",
    (e.NotFound, "page"): "Esta página não existe no console.",
    (e.Conflict, "erasure"): "Uma solicitação de eliminação é atendida pela eliminação dos "
                             "dados: use «Eliminar os dados, conforme a lei».",
    (e.Conflict, "identity_verified_at"): "Verifique a identidade do titular antes de "
                                          "concluir a solicitação.",
    (e.Conflict, "notified_anpd_at"): "Esta comunicação já foi registrada.",
    (e.Conflict, "notified_subjects_at"): "Esta comunicação já foi registrada.",
}


def message(exc: e.DomainError) -> str:
    """A Portuguese sentence for a refusal: it names the field, never the value."""
    field = getattr(exc, "field", None)
    if isinstance(exc, e.ValidationFailed):
        return f"Valor inválido no campo «{FIELDS.get(str(field), 'formulário')}»."
    detail = getattr(exc, "entity", None) if isinstance(exc, e.NotFound) else field
    for (cls, name), text in SPECIFIC.items():
        if isinstance(exc, cls) and detail == name:
            return text
    return next((text for cls, text in MESSAGES.items() if isinstance(exc, cls)),
                "Não foi possível concluir a ação.")


def status_of(exc: e.DomainError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 400)


def error(exc: e.DomainError, **context: Any) -> HTMLResponse:
    """The error page: a 4xx with a Portuguese message."""
    status = status_of(exc)
    title = {403: "Acesso negado", 404: "Não encontrado"}.get(status, "Não foi possível")
    return page("erro.html", status, titulo=title, mensagem=message(exc), **context)
