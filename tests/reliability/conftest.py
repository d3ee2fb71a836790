"""Reliability scenarios (docs/reliability.md): faults, races and hostile input against the
API over real HTTP. Each module gets a database of its own on the test server, so killing
"our" connections can never touch another test's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from tests.conftest import create_database, drop_database
from tests.reliability.harness import PrivateCluster, cluster_requirements

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: fault, race and hostile-input scenarios (docs/reliability.md)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="module")
def own_database(admin_url: str) -> Iterator[str]:
    """A migrated database for one module only."""
    url = create_database(admin_url, "rel")
    try:
        migrate.upgrade(url, Roles())
        yield url
    finally:
        drop_database(admin_url, url)


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster of this test's own, started (stopped and removed after)."""
    found = cluster_requirements()
    if isinstance(found, str):
        if os.environ.get("NEONPRO_REQUIRE_PITR"):  # CI: the private-cluster tests must run
            pytest.fail(found)
        pytest.skip(found)
    own = PrivateCluster(*found)
    try:
        own.start()
        yield own
    finally:
        own.destroy()
