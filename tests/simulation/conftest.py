"""One app and one database for the whole simulation run (fresh clinics per example)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from neonpro.bootstrap import Container
from neonpro.entrypoints.api.app import create_app
from tests.conftest import make_keyring, make_settings
from tests.simulation.machine import World


@pytest.fixture(scope="session")
def world(database_url: str) -> Iterator[World]:
    settings = make_settings(database_url, jwt_secret="s" * 32)
    box = Container(settings, database_url=database_url, keyring=make_keyring())
    owner = create_engine(database_url, poolclass=NullPool)
    try:
        with TestClient(create_app(box), raise_server_exceptions=False) as client:
            yield World(box, client, owner)
    finally:
        owner.dispose()
        box.close()
