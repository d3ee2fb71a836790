"""The in-process API shared by the HTTP end-to-end tests (one app per test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from neonpro.bootstrap import Container
from neonpro.entrypoints.api.app import create_app
from tests.conftest import make_keyring, make_settings


@pytest.fixture(scope="module")
def box(database_url: str) -> Iterator[Container]:
    settings = make_settings(database_url, jwt_secret="x" * 32, max_body_bytes=64_000)
    container = Container(settings, database_url=database_url, keyring=make_keyring())
    try:
        yield container
    finally:
        container.close()


@pytest.fixture(scope="module")
def client(box: Container) -> Iterator[TestClient]:
    with TestClient(create_app(box), raise_server_exceptions=False) as test_client:
        yield test_client
