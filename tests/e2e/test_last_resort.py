"""The last resort: whatever escapes every handler is a problem+json 500 logged by class and
place, never by its message; request ids that do not look like ids are replaced."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from neonpro.bootstrap import Container
from neonpro.entrypoints.api.app import create_app

SECRET = "Invalid isoformat string: 'Maria Secreta da Silva' maria.secreta@exemplo.test"


@pytest.fixture(scope="module")
def raw_client(box: Container) -> Iterator[TestClient]:
    app = create_app(box)

    @app.get("/boom/{kind}")
    def boom(kind: str) -> None:
        errors: dict[str, Exception] = {"value": ValueError(SECRET), "key": KeyError(SECRET),
                                        "overflow": OverflowError(SECRET)}
        raise errors[kind]

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("kind", ["value", "key", "overflow"])
def test_an_unhandled_exception_is_a_problem_logged_without_its_message(
        raw_client: TestClient, kind: str) -> None:
    with capture_logs() as logs:
        answer = raw_client.get(f"/boom/{kind}")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/internal_error")
    assert "Secreta" not in answer.text
    lines = [entry for entry in logs if entry.get("event") == "unhandled_exception"]
    assert len(lines) == 1
    assert lines[0]["error"] in {"ValueError", "KeyError", "OverflowError"}
    assert lines[0]["at"].startswith("tests/e2e/test_last_resort.py:boom:")
    assert lines[0]["via"].startswith("entrypoints/api/")
    assert "Secreta" not in repr(logs)
    assert "maria.secreta" not in repr(logs)


@pytest.mark.parametrize(("given", "kept"), [
    (str(uuid.UUID(int=7)), True), ("a3f9c2d1e0b4", True), ("0123456789abcdef" * 4, True),
    ("MariaSilva", False), ("maria.silva@exemplo.test", False), ("11144477735x", False),
    ("abc", False), ("a" * 65, False), ("Jo%C3%A3o", False),
    # a CPF, a CNS or a phone number in digits is hex digits too: never kept
    ("11144477735", False), ("111444777-35", False), ("898001160458881", False),
    ("5511987654321", False), ("12345678-1234-1234-1234-123456789012", True),
])
def test_request_ids_that_do_not_look_like_ids_are_replaced(
        raw_client: TestClient, given: str, kept: bool) -> None:
    answer = raw_client.get("/health/live", headers={"X-Request-ID": given})
    assert answer.status_code == 200
    assert (answer.headers["x-request-id"] == given) is kept
