"""An oversize body is a 413 however it is sent: with a Content-Length, or chunked (no
length: the server learns the size only by reading), over a real socket to uvicorn."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.entrypoints.api.app import create_app
from neonpro.services import clinics
from tests.e2e.api_helpers import headers, is_problem
from tests.reliability.harness import ThreadServer


@pytest.fixture(scope="module")
def served(box: Container) -> Iterator[str]:
    server = ThreadServer(create_app(box))
    try:
        yield server.base
    finally:
        server.stop()


def _chunks(total: int, size: int = 16_384) -> Iterator[bytes]:
    yield b'{"full_name": "Corpo Grande", "patient_notes": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}'


def test_a_chunked_oversize_body_is_413_not_400(box: Container, served: str) -> None:
    clinic = clinics.create_clinic(box.service_uow(Actor(uuid.uuid4(), "system")),
                                   ClinicCreate(name="Corpos")).id
    admin = {**headers(box, clinic, "admin"), "content-type": "application/json"}
    limit = box.settings.max_body_bytes
    with httpx.Client(base_url=served, timeout=30) as client:
        for total in (limit + 1, 5_000_000):  # just over, and the 5 MB
            chunked = client.post("/patients", headers=admin, content=_chunks(total))
            assert "content-length" not in chunked.request.headers
            assert chunked.request.headers["transfer-encoding"] == "chunked"
            is_problem(chunked, 413, "body_too_large")
        declared = client.post("/patients", headers=admin, content=b"".join(_chunks(limit)))
        is_problem(declared, 413, "body_too_large")
        # a chunked body within the limit is read whole and served as usual
        small = client.post("/patients", headers=admin, content=iter(
            [b'{"full_name": ', b'"Corpo Pequeno"}']))
        assert small.status_code == 201, small.text
        assert small.json()["full_name"] == "Corpo Pequeno"
        assert client.get("/health/live").status_code == 200
