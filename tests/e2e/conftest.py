"""The in-process API shared by the HTTP end-to-end tests (one app per test module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from neonpro.adapters.crypto import generate_key_file, load_keyring
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


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], Container]:
    """The environment of an in-process CLI run (a key file of its own) and a container on
    the same database and keys; the caller closes the container."""
    # in-process: keep the session's logging (the PII guard's DEBUG capture) as it is
    monkeypatch.setattr("neonpro.entrypoints.cli._common.configure_logging",
                        lambda *_a, **_k: None)
    keys = tmp_path / "keys.json"
    generate_key_file(keys)
    settings = make_settings(database_url, key_file=keys)
    box = Container(settings, database_url=database_url, keyring=load_keyring(settings))
    return {"NEONPRO_DATABASE_URL": database_url, "NEONPRO_KEY_FILE": str(keys)}, box
