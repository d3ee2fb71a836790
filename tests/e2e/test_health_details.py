"""Readiness tells strangers ready or not; the details (PostgreSQL's version, role names, the
schema revision, each check) are for operators: a bearer token, or loopback without one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.entrypoints.api.app import create_app
from tests.conftest import make_keyring, make_settings
from tests.e2e.api_helpers import is_problem

TOKEN = "operador-" + "k" * 40


@pytest.fixture(scope="module")
def guarded(database_url: str) -> Iterator[TestClient]:
    settings = make_settings(database_url, jwt_secret="x" * 32, operator_token=TOKEN)
    box = Container(settings, database_url=database_url, keyring=make_keyring())
    try:
        with TestClient(create_app(box), raise_server_exceptions=False) as client:
            yield client
    finally:
        box.close()


def test_readiness_says_nothing_but_ready(guarded: TestClient) -> None:
    answer = guarded.get("/health/ready")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready"}
    for word in ("PostgreSQL", "neonpro_app", "revision", "server_version"):
        assert word not in answer.text


def test_details_need_the_operator_token(guarded: TestClient) -> None:
    for given in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                  {"Authorization": f"Bearer {TOKEN}x"}):
        is_problem(guarded.get("/health/details", headers=given), 401, "unauthenticated")
    shown = guarded.get("/health/details", headers={"Authorization": f"Bearer {TOKEN}"})
    assert shown.status_code == 200
    assert shown.json()["ok"] is True


def test_without_a_token_only_loopback_clients_see_details(box: Container) -> None:
    app = create_app(box)
    with TestClient(app, raise_server_exceptions=False) as remote:  # client "testclient"
        is_problem(remote.get("/health/details"), 401, "unauthenticated")
    with TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 5000)) as local:
        assert local.get("/health/details").json()["ok"] is True
