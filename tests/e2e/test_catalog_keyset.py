"""Professionals and service types page by keyset as their ``cursor`` parameter says: every
row once, in order, across pages; a cursor this API did not issue for the listing (forged,
altered, another clinic's or another listing's) is a 422, never the first page again."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.services import clinics
from tests.e2e.api_helpers import headers, is_problem

SYSTEM = Actor(uuid.UUID("00000000-0000-0000-0000-00000000b0b0"), "admin")
LISTINGS = {"/professionals": ("full_name", lambda n: {"full_name": f"Dra Página {n:02d}"}),
            "/service-types": ("name", lambda n: {"name": f"Serviço {n:02d}",
                                                  "duration_minutes": 30})}


@pytest.mark.parametrize("path", sorted(LISTINGS))
def test_keyset_pages_cover_every_row_once_and_refuse_foreign_cursors(
        client: TestClient, box: Container, path: str) -> None:
    ours, theirs = (clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name=n)).id
                    for n in ("Paginada", "Outra"))
    admin, foreign = headers(box, ours, "admin"), headers(box, theirs, "admin")
    field, body = LISTINGS[path]
    for n in (4, 0, 6, 2, 1, 5, 3):
        for hdrs in (admin, foreign):
            assert client.post(path, headers=hdrs, json=body(n)).status_code == 201
    seen: list[str] = []
    cursor = ""
    pages = 0
    first_cursor = None
    while cursor is not None:
        page = client.get(path, headers=admin, params={"cursor": cursor, "limit": 3})
        assert page.status_code == 200, page.text
        seen += [item[field] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        first_cursor = first_cursor or cursor
        pages += 1
    assert seen == sorted(body(n)[field] for n in range(7))
    assert pages == 3
    assert first_cursor
    alien = client.get(path, headers=foreign, params={"cursor": "", "limit": 3}).json()
    middle = len(first_cursor) // 2
    refused = [first_cursor[:middle] + ("A" if first_cursor[middle] != "A" else "B")
               + first_cursor[middle + 1:], first_cursor[:-2], "forjado", alien["next_cursor"]]
    for bad in refused:
        is_problem(client.get(path, headers=admin, params={"cursor": bad, "limit": 3}),
                   422, "validation_failed")
