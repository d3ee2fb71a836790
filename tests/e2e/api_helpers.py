"""Tokens and problem+json checks for the HTTP end-to-end tests."""

from __future__ import annotations

import uuid

from neonpro.adapters.auth import TokenCodec
from neonpro.bootstrap import Container
from neonpro.domain.vocabulary import ClinicRole


def headers(box: Container, clinic: uuid.UUID, role: str,
            user: uuid.UUID | None = None) -> dict[str, str]:
    token = TokenCodec(box.settings, box.keyring).issue(user or uuid.uuid4(), clinic,
                                                        ClinicRole(role))
    return {"Authorization": f"Bearer {token}"}


def is_problem(response: object, status: int, kind: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["type"] == f"https://neonpro.dev/problems/{kind}"
    assert body["status"] == status
    return body
