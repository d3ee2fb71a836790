"""The DPO console (docs/console.md) against its adversaries, with FastAPI's TestClient:

* a lower role (receptionist, professional) with a real account: the 403 page, audited;
* a stranger: sent to the sign-in page; guessing passwords, throttled like the API;
* a forged cross-site POST (no CSRF token, or another session's): refused, audited;
* another clinic's DPO: never sees this clinic's requests or incidents;
and every DPO action leaves its audit event; no page loads anything from another site.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.audit_reports import AuditFilters
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.entrypoints.api.app import create_app
from neonpro.services import audit, clinics
from tests.e2e.console_helpers import PASSWORD, post_sign_in, sign_in, staff

SYSTEM = SystemActors.CLI
PAGES = ["/console"]


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
