"""Staff accounts and signing in to the DPO console, for its TestClient and browser tests."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient

from neonpro.adapters.auth import hash_password
from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.clinic import StaffUserCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.services import clinics

PASSWORD = "senha longa do encarregado"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def staff(box: Container, clinic: uuid.UUID, role: ClinicRole = ClinicRole.DPO) -> str:
    """A new staff member of ``clinic`` in ``role``, signing in with :data:`PASSWORD`."""
    email = f"c{uuid.uuid4().hex[:10]}@clinica.example"
    clinics.add_staff_member(box.service_uow(SystemActors.CLI), clinic, StaffUserCreate(
        email=email, display_name="Pessoa da Equipe", password_hash=hash_password(PASSWORD)),
        role)
    return email


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no csrf field on the page"
    return found.group(1)


def post_sign_in(client: TestClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    form = client.get("/console/entrar")
    assert form.status_code == 200
    return client.post("/console/entrar", data={
        "csrf": csrf_of(form.text), "email": email, "password": password},
        follow_redirects=False)


def sign_in(client: TestClient, email: str) -> str:
    """Sign ``email`` in; the session's CSRF token (read from the today page)."""
    answer = post_sign_in(client, email)
    assert answer.status_code == 303, answer.text
    today = client.get("/console")
    assert today.status_code == 200, today.text
    return csrf_of(today.text)
