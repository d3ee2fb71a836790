"""The DPO console (docs/console.md) against its adversaries, with FastAPI's TestClient:

* a lower role (receptionist, professional) with a real account: the 403 page, audited;
* a stranger: sent to the sign-in page; guessing passwords, throttled like the API;
* a forged cross-site POST (no CSRF token, or another session's): refused, audited;
* another clinic's DPO: never sees this clinic's requests or incidents;
and every DPO action leaves its audit event; no page loads anything from another site.
"""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.audit_reports import AuditFilters
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import (
    ClinicRole,
    CollectionMethod,
    ConsentPurpose,
    DataSubjectRequestKind,
)
from neonpro.entrypoints.api.app import create_app
from neonpro.services import audit, clinics, consents, lgpd_requests, patients
from neonpro.services.lgpd_requests import RequestOpen
from tests import valid
from tests.e2e.console_helpers import PASSWORD, csrf_of, post_sign_in, sign_in, staff

SYSTEM = SystemActors.CLI
PAGES = ["/console", "/console/solicitacoes", "/console/incidentes", "/console/auditoria",
         "/console/consentimentos", "/console/pacientes", "/console/relatorio"]


def _client(box: Container, address: str = "198.51.100.20") -> TestClient:
    return TestClient(create_app(box), raise_server_exceptions=False, client=(address, 40000))


@pytest.fixture(scope="module")
def clinic(box: Container) -> uuid.UUID:
    return clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Clínica Console")).id


@pytest.fixture(scope="module")
def dpo(box: Container, clinic: uuid.UUID) -> Iterator[tuple[TestClient, str]]:
    with _client(box) as client:
        yield client, sign_in(client, staff(box, clinic))


def _events(box: Container, clinic: uuid.UUID, action: str) -> list[dict[str, object]]:
    page = audit.search_audit(box.uow(clinic, SYSTEM), AuditFilters(action=action), 200)
    return [e.model_dump() for e in page.items]


def test_the_dpo_signs_in_and_sees_today(dpo: tuple[TestClient, str]) -> None:
    client, _ = dpo
    today = client.get("/console")
    assert today.status_code == 200
    assert '<html lang="pt-BR">' in today.text
    for heading in ("Solicitações de titulares", "Incidentes de segurança",
                    "Trilha de auditoria", "Retenção pendente"):
        assert heading in today.text


def test_the_session_cookie_is_httponly_and_strict(box: Container, clinic: uuid.UUID) -> None:
    with _client(box, "198.51.100.21") as client:
        answer = post_sign_in(client, staff(box, clinic))
        assert answer.status_code == 303
        cookie = next(v for k, v in answer.headers.multi_items()
                      if k == "set-cookie" and v.startswith("neonpro_console="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert "httponly" in flags
        assert "samesite=strict" in flags
        assert "path=/console" in flags
        assert "secure" not in flags  # NEONPRO_ENVIRONMENT=test; production adds it


def test_a_stranger_is_sent_to_sign_in(box: Container) -> None:
    with _client(box, "198.51.100.22") as client:
        for path in PAGES:
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/console/entrar"
        forged = client.post("/console/sair", data={"csrf": "x"},
                             follow_redirects=False)
        assert forged.status_code == 303


@pytest.mark.parametrize("role", [ClinicRole.RECEPTIONIST, ClinicRole.PROFESSIONAL])
def test_lower_roles_get_the_403_page_and_it_is_audited(
        box: Container, clinic: uuid.UUID, role: ClinicRole) -> None:
    before = len(_events(box, clinic, "PERMISSION_DENIED"))
    with _client(box, "198.51.100.23") as client:
        answer = post_sign_in(client, staff(box, clinic, role))
        assert answer.status_code == 403
        assert "Acesso negado" in answer.text
        assert "neonpro_console=" not in answer.headers.get("set-cookie", "")
        assert client.get("/console", follow_redirects=False).status_code == 303
    refused = _events(box, clinic, "PERMISSION_DENIED")
    assert len(refused) == before + 1
    assert refused[0]["actor_role"] == role.value
    assert refused[0]["resource_type"] == "console"


def test_a_wrong_password_and_then_the_lockout(box: Container, clinic: uuid.UUID) -> None:
    email = staff(box, clinic)
    limit = box.settings.login_max_failures
    with _client(box, "192.0.2.99") as client:
        statuses = [post_sign_in(client, email, f"palpite {i}").status_code
                    for i in range(limit + 1)]
        assert statuses == [401] * limit + [429]
        right = post_sign_in(client, email, PASSWORD)
        assert right.status_code == 429
        assert "Muitas tentativas" in right.text
        assert PASSWORD not in right.text


def test_a_post_without_the_csrf_token_is_refused_and_audited(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    before = len(_events(box, clinic, "PERMISSION_DENIED"))
    for data in ({}, {"csrf": ""}, {"csrf": csrf[:-1] + ("0" if csrf[-1] != "0" else "1")}):
        answer = client.post("/console/sair", data=data, follow_redirects=False)
        assert answer.status_code == 403, data
        assert "Formulário recusado" in answer.text
    assert client.get("/console").status_code == 200  # still signed in: nothing happened
    refused = _events(box, clinic, "PERMISSION_DENIED")
    assert len(refused) == before + 3
    assert refused[0]["details"]["fields"] == ["csrf"]  # type: ignore[index]


def test_the_sign_in_form_needs_its_own_csrf_pair(box: Container, clinic: uuid.UUID) -> None:
    with _client(box, "198.51.100.24") as client:
        answer = client.post("/console/entrar", data={
            "csrf": "forjado", "email": staff(box, clinic), "password": PASSWORD},
            follow_redirects=False)
        assert answer.status_code == 403


def test_signing_out_ends_the_session(box: Container, clinic: uuid.UUID) -> None:
    with _client(box, "198.51.100.25") as client:
        csrf = sign_in(client, staff(box, clinic))
        token = client.cookies.get("neonpro_console")
        out = client.post("/console/sair", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
        client.cookies.set("neonpro_console", token or "", path="/console")
        assert client.get("/console", follow_redirects=False).status_code == 303


_SOURCES = re.compile(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="([^"]+)"', re.IGNORECASE)


def test_no_page_loads_anything_from_another_site(dpo: tuple[TestClient, str]) -> None:
    client, _ = dpo
    for path in [*PAGES, "/console/entrar", "/docs"]:
        answer = client.get(path)
        assert answer.status_code == 200, path
        sources = _SOURCES.findall(answer.text)
        assert sources, path
        assert [s for s in sources if s.startswith(("http://", "https://", "//"))] == [], path
        for source in sources:
            assert client.get(source).status_code == 200, source


def test_the_api_docs_work_offline(dpo: tuple[TestClient, str]) -> None:
    client, _ = dpo
    docs = client.get("/docs")
    assert "/static/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn." not in docs.text
    bundle = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert len(bundle.content) > 1_000_000
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    assert client.get("/redoc").status_code == 404


# ------------------------------------------------------------------ data-subject requests
def _patient(box: Container, clinic: uuid.UUID) -> uuid.UUID:
    created = patients.register_patient(box.uow(clinic, SYSTEM), PatientCreate(
        full_name="Titular do Console"))
    return created.id


def _request(box: Container, clinic: uuid.UUID, kind: str = "access") -> uuid.UUID:
    return lgpd_requests.open_request(box.uow(clinic, SYSTEM), RequestOpen(
        patient_id=_patient(box, clinic), kind=DataSubjectRequestKind(kind))).id


def _trigger_events(box: Container, clinic: uuid.UUID, request_id: uuid.UUID) -> int:
    page = audit.search_audit(box.uow(clinic, SYSTEM), AuditFilters(
        resource_id=str(request_id)), 200)
    return len(page.items)


def test_a_request_from_open_to_fulfilled_with_an_export(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    request_id = _request(box, clinic)
    base = f"/console/solicitacoes/{request_id}"
    listed = client.get("/console/solicitacoes?situacao=open")
    assert str(request_id) in listed.text
    opened = client.get(base)
    assert opened.status_code == 200
    assert "Aberta" in opened.text
    events = _trigger_events(box, clinic, request_id)
    early = client.post(f"{base}/atender", data={"csrf": csrf, "response": "x"})
    assert early.status_code == 409
    assert "Verifique a identidade" in early.text
    assert client.post(f"{base}/verificar", data={"csrf": csrf}).status_code == 200
    exported = client.post(f"{base}/exportar", data={"csrf": csrf, "format": "json"})
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith("attachment")
    digest = hashlib.sha256(exported.content).hexdigest()
    assert exported.headers["x-content-sha256"] == digest
    done = client.post(f"{base}/atender", data={"csrf": csrf})
    assert done.status_code == 200
    assert "Solicitação atendida." in done.text
    assert digest in done.text
    stored = lgpd_requests.get_request(box.uow(clinic, SYSTEM), request_id)
    assert stored.status == "fulfilled"
    assert stored.response_sha256 == digest
    # the triggers' UPDATEs (verify, export, fulfil) and the reads: each step audited
    assert _trigger_events(box, clinic, request_id) >= events + 3
    exports = [e for e in _events(box, clinic, "EXPORT")
               if e["details"].get("request_id") == str(request_id)]  # type: ignore[union-attr]
    assert len(exports) == 1
    again = client.post(f"{base}/recusar", data={"csrf": csrf, "reason": "tarde"})
    assert again.status_code == 409  # fulfilled is final


def test_refusing_needs_a_reason(box: Container, clinic: uuid.UUID,
                                 dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    request_id = _request(box, clinic, "deletion")
    base = f"/console/solicitacoes/{request_id}"
    blank = client.post(f"{base}/recusar", data={"csrf": csrf, "reason": "  "})
    assert blank.status_code == 422
    assert "motivo" in blank.text
    refused = client.post(f"{base}/recusar", data={
        "csrf": csrf, "reason": "prontuário sob guarda legal de 20 anos"})
    assert refused.status_code == 200
    assert "Recusada" in refused.text


def test_a_deletion_request_erases_the_patient_as_the_law_allows(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    """Art. 18 VI from the console: the plan shown, nothing erased before the identity is
    verified and the DPO confirms; then the patient erased (audited, in the ledger naming
    the request) and the request fulfilled with the hash of the Portuguese answer shown."""
    client, csrf = dpo
    patient = patients.register_patient(box.uow(clinic, SYSTEM), PatientCreate(
        full_name="Titular a Eliminar")).id
    request_id = lgpd_requests.open_request(box.uow(clinic, SYSTEM), RequestOpen(
        patient_id=patient, kind=DataSubjectRequestKind.DELETION)).id
    base = f"/console/solicitacoes/{request_id}"
    shown = client.get(base)
    assert "Plano de eliminação" in shown.text
    assert "sem base legal para manter" in shown.text  # the grounds, in Portuguese
    assert "Concluir como atendida" not in shown.text  # answered by the erasure only
    early = client.post(f"{base}/eliminar", data={"csrf": csrf, "confirmo": "1"})
    assert early.status_code == 409
    assert "Verifique a identidade" in early.text
    client.post(f"{base}/verificar", data={"csrf": csrf})
    unconfirmed = client.post(f"{base}/eliminar", data={"csrf": csrf})
    assert unconfirmed.status_code == 422
    assert "«confirmação da eliminação»" in unconfirmed.text
    closed = client.post(f"{base}/atender", data={"csrf": csrf, "response": "apagado"})
    assert closed.status_code == 409  # a forged "fulfil" cannot close it unerased
    assert "atendida pela eliminação" in closed.text
    assert patients.get_patient(box.uow(clinic, SYSTEM), patient).full_name \
        == "Titular a Eliminar"  # nothing erased yet

    done = client.post(f"{base}/eliminar", data={"csrf": csrf, "confirmo": "1"})
    assert done.status_code == 200, done.text
    assert "Dados do titular eliminados conforme a lei" in done.text
    answer = html.unescape(re.search(r'<textarea id="resposta-eliminacao"[^>]*>(.*?)</textarea>',
                                     done.text, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert answer.startswith("Atendendo à sua solicitação de eliminação")
    stored = lgpd_requests.get_request(box.uow(clinic, SYSTEM), request_id)
    assert stored.status == "fulfilled"
    assert stored.response_sha256 == hashlib.sha256(answer.encode()).hexdigest()
    assert answer in html.unescape(client.get(base).text)  # shown again later, the same
    assert patients.get_patient(box.uow(clinic, SYSTEM), patient).full_name \
        != "Titular a Eliminar"  # anonymized (no clinical record to hold)
    erased = audit.search_audit(box.uow(clinic, SYSTEM), AuditFilters(
        patient_id=patient, action="ANONYMIZE"), 50).items
    assert erased  # each decision audited with its legal reference
    assert "Titular a Eliminar" not in client.post("/console/pacientes", data={
        "csrf": csrf, "busca": "Titular a Eliminar"}).text
    assert client.post(f"{base}/eliminar", data={
        "csrf": csrf, "confirmo": "1"}).status_code == 409  # fulfilled is final
    access = f"/console/solicitacoes/{_request(box, clinic)}"
    client.post(f"{access}/verificar", data={"csrf": csrf})
    assert client.post(f"{access}/eliminar", data={
        "csrf": csrf, "confirmo": "1"}).status_code == 422  # an access request erases nothing
    other = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Alheia")).id
    theirs = _request(box, other, "deletion")
    assert client.post(f"/console/solicitacoes/{theirs}/eliminar", data={
        "csrf": csrf, "confirmo": "1"}).status_code == 404


def test_bad_input_is_a_portuguese_4xx_never_a_500(dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    assert client.get("/console/solicitacoes/nao-e-um-id").status_code == 422
    assert client.get(f"/console/solicitacoes/{uuid.uuid4()}").status_code == 404
    assert client.get("/console/solicitacoes?situacao=talvez").status_code == 422
    bad = client.post("/console/solicitacoes/nova", data={
        "csrf": csrf, "patient_id": str(uuid.uuid4()), "kind": "access"})
    assert bad.status_code == 404
    assert "Paciente não encontrado nesta clínica" in bad.text
    worse = client.post("/console/solicitacoes/nova", data={
        "csrf": csrf, "patient_id": "x", "kind": "nada"})
    assert worse.status_code == 422
    assert "«paciente»" in worse.text


def test_another_clinics_request_is_not_visible(box: Container, clinic: uuid.UUID,
                                               dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    other = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Outra")).id
    theirs = _request(box, other)
    assert str(theirs) not in client.get("/console/solicitacoes").text
    assert str(theirs) not in client.get("/console").text
    assert client.get(f"/console/solicitacoes/{theirs}").status_code == 404
    for action in ("verificar", "iniciar", "exportar", "atender", "recusar"):
        answer = client.post(f"/console/solicitacoes/{theirs}/{action}",
                             data={"csrf": csrf, "reason": "x", "response": "x"})
        assert answer.status_code == 404, action
    assert lgpd_requests.get_request(box.uow(other, SYSTEM), theirs).status == "open"


def _fresh_cpf() -> str:
    """A valid CPF no other test of the run is likely to have used."""
    return valid.cpf(90_000 + uuid.uuid4().int % 1_000_000)


def test_a_patient_found_by_cpf_or_name_and_a_request_registered_by_cpf(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    """The DPO is told a CPF or a name, never an id: the finder answers both, shows the CPF
    only partly, keeps both out of the URL, audits the lookup; a request is registered by
    CPF; another clinic's patient is never found."""
    client, csrf = dpo
    digits = _fresh_cpf()
    formatted = f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}"
    created = patients.register_patient(box.uow(clinic, SYSTEM), PatientCreate(
        full_name="Joaquina Estêvão Dias", cpf=digits))
    other = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Vizinha")).id
    other_cpf = _fresh_cpf()
    patients.register_patient(box.uow(other, SYSTEM), PatientCreate(
        full_name="Joaquina Estevão Vizinha", cpf=other_cpf))

    by_cpf = client.post("/console/pacientes", data={"csrf": csrf, "busca": formatted})
    assert by_cpf.status_code == 200, by_cpf.text
    assert "Joaquina Estêvão Dias" in by_cpf.text
    assert f"***.{digits[3:6]}.{digits[6:9]}-**" in by_cpf.text
    assert digits not in by_cpf.text
    assert formatted not in by_cpf.text
    assert f"/console/consentimentos?paciente={created.id}" in by_cpf.text
    # the search is a POST: a CPF put in the address finds nothing and shows no row
    assert '<form method="post" action="/console/pacientes"' in by_cpf.text
    in_url = client.get("/console/pacientes", params={"busca": formatted})
    assert "Joaquina" not in in_url.text
    views = audit.search_audit(box.uow(clinic, SYSTEM), AuditFilters(
        patient_id=created.id, action="VIEW"), 50).items
    assert any((e.details or {}).get("lookup") == "cpf" for e in views)  # audited

    by_name = client.post("/console/pacientes", data={"csrf": csrf, "busca": "estevao"})
    assert "Joaquina Estêvão Dias" in by_name.text  # accents and case ignored
    assert "Vizinha" not in by_name.text  # another clinic's namesake
    theirs = client.post("/console/pacientes", data={"csrf": csrf, "busca": other_cpf})
    assert theirs.status_code == 200
    assert "Nenhum paciente" in theirs.text
    for value, field in (("jo", "CPF ou nome"), (digits[:-1] + str((int(digits[-1]) + 1) % 10),
                                                 "CPF"), ("", "CPF ou nome")):
        bad = client.post("/console/pacientes", data={"csrf": csrf, "busca": value})
        assert bad.status_code == 422, value
        assert f"«{field}»" in bad.text
    forged = client.post("/console/pacientes", data={"busca": formatted})
    assert forged.status_code == 403  # a search is a POST with the session's token

    registered = client.post("/console/solicitacoes/nova", data={
        "csrf": csrf, "patient_id": formatted, "kind": "access"})
    assert registered.status_code == 200, registered.text
    assert "Solicitação registrada" in registered.text
    assert "Joaquina Estêvão Dias" in registered.text  # whose request it is
    request_id = uuid.UUID(registered.url.path.rsplit("/", 1)[-1])
    assert lgpd_requests.get_request(box.uow(clinic, SYSTEM), request_id).patient_id \
        == created.id
    nobody = client.post("/console/solicitacoes/nova", data={
        "csrf": csrf, "patient_id": other_cpf, "kind": "access"})
    assert nobody.status_code == 404
    assert "Paciente não encontrado nesta clínica" in nobody.text


def test_an_unknown_console_address_is_the_consoles_404_page(
        box: Container, dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    for answer in (client.get("/console/nao-existe"), client.get("/console/solicitacoes/a/b/c"),
                   client.post("/console/nao-existe", data={"csrf": csrf})):
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
        assert "Esta página não existe no console." in answer.text
        assert "Sair" in answer.text  # the signed-in page, with the console's navigation
    home = client.get("/console/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (303, "/console")
    slash = client.get("/console/solicitacoes/?situacao=open", follow_redirects=False)
    assert (slash.status_code, slash.headers["location"]) == (
        303, "/console/solicitacoes?situacao=open")  # the filter kept
    assert client.post("/console/solicitacoes/", data={"csrf": csrf}).status_code == 404
    with _client(box, "198.51.100.27") as stranger:
        answer = stranger.get("/console/nao-existe", follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/entrar")


# ------------------------------------------------------------------------------ incidents
def test_an_incident_registered_assessed_and_notified(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    before = len(_events(box, clinic, "INCIDENT"))
    created = client.post("/console/incidentes/novo", data={
        "csrf": csrf, "detected_at": "2026-04-02T09:30", "learned_at": "2026-04-02T10:00",
        "risk_level": "low", "affected_patient_count": "3",
        "categories": ["contact", "clinical"],
        "description": "credencial de recepção usada fora do expediente"})
    assert created.status_code == 200, created.text
    assert "Incidente registrado" in created.text
    # health data is never below high risk; learned Thursday before Good Friday: due Apr 8
    assert "Alto" in created.text
    assert "08/04/2026 23:59" in created.text
    assert "em atraso" in created.text
    incident = created.url.path.rsplit("/", 1)[-1]
    actor = str(uuid.uuid4())
    assessed = client.post(f"/console/incidentes/{incident}/avaliar",
                           data={"csrf": csrf, "actor_id": actor})
    assert assessed.status_code == 200, assessed.text
    for which in ("anpd", "subjects"):
        told = client.post(f"/console/incidentes/{incident}/notificar",
                           data={"csrf": csrf, "which": which})
        assert told.status_code == 200, told.text
    assert "em atraso" not in told.text
    twice = client.post(f"/console/incidentes/{incident}/notificar",
                        data={"csrf": csrf, "which": "anpd"})
    assert twice.status_code == 409
    assert "já foi registrada" in twice.text
    events = _events(box, clinic, "INCIDENT")
    assert len(events) >= before + 3  # registered, notified twice
    assert all("credencial" not in str(e["details"]) for e in events)  # never the text
    closing = client.post(f"/console/incidentes/{incident}/encerrar",
                          data={"csrf": csrf, "status": "closed"})
    assert closing.status_code in {409, 422}  # closing needs a mitigation
    listed = client.get("/console/incidentes")
    assert incident in listed.text


def test_an_incident_with_bad_dates_is_a_422_page(dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    for data in ({"detected_at": "ontem", "description": "x"},
                 {"detected_at": "2026-04-02T09:30", "learned_at": "2026-04-01T09:30",
                  "description": "x"},
                 {"detected_at": "2026-04-02T09:30", "description": ""},
                 {"detected_at": "2026-04-02T09:30", "description": "x", "categories": "dna"}):
        answer = client.post("/console/incidentes/novo", data={"csrf": csrf, **data})
        assert answer.status_code == 422, (data, answer.text)
        assert "Valor inválido" in answer.text


# ---------------------------------------------------------------------------------- audit
def test_audit_search_investigation_and_verification(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    client, csrf = dpo
    found = client.get("/console/auditoria?acao=LOGIN")
    assert found.status_code == 200
    assert "Entrada" in found.text
    by_address = client.get("/console/auditoria?ip=198.51.100.20&investigar=1")
    assert by_address.status_code == 200
    assert "Investigação" in by_address.text
    assert client.get("/console/auditoria?ip=nao-e-ip").status_code == 422
    assert client.get("/console/auditoria?investigar=1").status_code == 422
    assert client.get("/console/auditoria?de=2026-05-02&ate=2026-05-01").status_code == 422
    checked = client.post("/console/auditoria/verificar", data={"csrf": csrf})
    assert checked.status_code == 200
    assert "Cadeia verificada agora." in checked.text
    assert "Íntegra" in checked.text
    for internal in ("head_seq", "broken_at", "None", "True", "False"):
        assert internal not in checked.text, internal
    views = [e for e in _events(box, clinic, "VIEW") if e["resource_type"] == "audit_events"]
    assert any(e["details"].get("investigation") for e in views)  # type: ignore[union-attr]


# ------------------------------------------------------------------------------- consents
def test_a_patients_consent_history_and_the_clinics_coverage(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    client, _ = dpo
    patient = _patient(box, clinic)
    granted = consents.grant_consent(box.uow(clinic, SYSTEM), ConsentCreate(
        patient_id=patient, purpose=ConsentPurpose.IMAGE_USE, terms_version="img-2026",
        terms_hash=hashlib.sha256(b"termos").hexdigest(),
        collection_method=CollectionMethod.WRITTEN, data_categories=["images"]))
    consents.revoke_consent(box.uow(clinic, SYSTEM), granted.id)
    page = client.get(f"/console/consentimentos?paciente={patient}")
    assert page.status_code == 200
    assert page.text.count("img-2026") >= 3  # the grant, its revocation, the state
    assert "Uso de imagem" in page.text
    assert "Revogado" in page.text
    coverage = client.get("/console/consentimentos")
    assert "Cobertura por finalidade" in coverage.text
    assert "Marketing" in coverage.text
    other = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Terceira")).id
    theirs = _patient(box, other)
    assert client.get(f"/console/consentimentos?paciente={theirs}").status_code == 404


# --------------------------------------------------------------------------------- report
def test_the_compliance_report_reads_as_a_document(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    client, _ = dpo
    before = len(_events(box, clinic, "EXPORT"))
    answer = client.get("/console/relatorio?de=2026-01-01&ate=2026-12-31")
    assert answer.status_code == 200, answer.text
    text = answer.text
    assert "Clínica Console" in text
    assert "CNPJ" in text
    assert "de 01/01/2026 00:00 a 31/12/2026 23:59" in text
    assert "America/Sao_Paulo" in text
    assert re.search(r"Gerado em</dt><dd>\d\d/\d\d/\d{4} \d\d:\d\d", text)
    for check in ("Integridade da trilha", "Solicitações de titulares", "O que significa",
                  "Resultado: Conforme"):
        assert check in text, check
    for internal in ("None", "True", "False", "head_seq", "broken_at", "{'", "T00:00"):
        assert internal not in text, internal
    assert "data-imprimir" in text
    css = client.get("/console/static/console.css").text
    assert "@media print" in css
    reports = [e for e in _events(box, clinic, "EXPORT")
               if e["resource_type"] == "compliance_report"]
    assert len(_events(box, clinic, "EXPORT")) == before + 1
    assert reports


def test_cnpj_is_shown_formatted() -> None:
    from neonpro.entrypoints.console.report import cnpj  # noqa: PLC0415

    assert cnpj("11222333000181") == "11.222.333/0001-81"
    assert cnpj(None) == "não informado"


HOSTILE = ["", "x", "0" * 600, "2026-13-45", "-1", "99999999999999999999", "' OR 1=1 --",
           "<script>alert(1)</script>", "\u0000", "%", str(uuid.uuid4())]
FIELDS = ["confirmo", "patient_id", "kind", "received_at", "response", "reason", "format", "which", "at",
          "actor_id", "ip", "since", "until", "status", "mitigation", "detected_at",
          "learned_at", "description", "categories", "affected_patient_count", "risk_level",
          "risk_assessment", "busca"]
QUERY = ["situacao", "atraso", "paciente", "ator", "ip", "acao", "risco", "de", "ate",
         "investigar", "cursor", "feito"]


def test_no_hostile_value_gets_a_500_or_is_echoed_unescaped(
        box: Container, clinic: uuid.UUID, dpo: tuple[TestClient, str]) -> None:
    """Every console route, every field and query parameter, hostile values: a 4xx page or
    a 2xx/3xx, never a 500; markup is escaped."""
    client, csrf = dpo
    request_id, incident_id = _request(box, clinic), uuid.uuid4()
    paths = [r.path.replace("{request_id}", str(request_id))
             .replace("{incident_id}", str(incident_id))
             for r in client.app.routes  # type: ignore[attr-defined]
             if getattr(r, "path", "").startswith("/console") and r.path != "/console/sair"
             and "static" not in r.path]
    assert len(paths) > 15
    for value in HOSTILE:
        for path in paths:
            get = client.get(path, params=dict.fromkeys(QUERY, value))
            post = client.post(path, data={"csrf": csrf, **dict.fromkeys(FIELDS, value)},
                               follow_redirects=False)
            for answer in (get, post):
                assert answer.status_code < 500, (path, value, answer.text[:300])
                assert "<script>alert" not in answer.text, path


def test_an_account_of_two_clinics_names_the_clinic(box: Container, clinic: uuid.UUID) -> None:
    other = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Segunda")).id
    desk = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Balcão")).id
    email = staff(box, clinic)
    with box.service_uow(SYSTEM) as tx:
        user = tx.logins.find_login(email)
        assert user is not None
        tx.clinics.add_membership(other, user.user_id, ClinicRole.DPO)
        tx.clinics.add_membership(desk, user.user_id, ClinicRole.RECEPTIONIST)
        tx.commit()
    with _client(box, "198.51.100.26") as client:
        wrong = post_sign_in(client, email, "not the password")
        assert wrong.status_code == 401  # a stranger learns no clinic
        assert "<select" not in wrong.text
        assert "Segunda" not in wrong.text
        asked = post_sign_in(client, email)  # the right password: which clinic?
        assert asked.status_code == 200
        assert "escolha em qual entrar" in asked.text
        # the account's two clinics where it may use the console, by name, and no other (not
        # the one where it is at the desk); its e-mail kept, not the password
        assert re.findall(r'<option value="([^"]+)">', asked.text) == sorted(
            [str(clinic), str(other)],
            key=lambda c: "Clínica Console" if c == str(clinic) else "Segunda")
        assert "Clínica Console · Encarregado (DPO)" in asked.text
        assert f'value="{email}"' in asked.text
        assert PASSWORD not in asked.text
        assert client.get("/console", follow_redirects=False).status_code == 303  # no session
        for given, status in (("não-é-id", 422), (str(other), 303)):
            form = client.get("/console/entrar")  # each answer of the form pairs anew
            answer = client.post("/console/entrar", data={
                "csrf": csrf_of(form.text), "email": email, "password": PASSWORD,
                "clinic_id": given}, follow_redirects=False)
            assert answer.status_code == status, given
        assert "Segunda" in client.get("/console").text
