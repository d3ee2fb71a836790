"""Tests against a local Citus cluster (``neonpro.devtools.citus``): a coordinator and two
workers on private ports. Skipped where Citus is not installed, with the reason; required
where ``NEONPRO_REQUIRE_CITUS`` is set (``.ci/run`` sets it after installing Citus)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.devtools import citus
from tests.conftest import start_citus_cluster

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "citus: needs a local Citus cluster (tests/citus)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.citus)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[citus.LocalCluster]:
    """A cluster of this test run's own (its own directory and ports), removed after."""
    cluster = start_citus_cluster()
    try:
        yield cluster
    finally:
        citus.down(Path(cluster.base))


@contextmanager
def migrated_database(cluster: citus.LocalCluster, roles: Roles, name: str) -> Iterator[str]:
    """A Citus database of a test module's own on the run's cluster, migrated (the
    migrations distribute it), dropped from every node afterwards; its coordinator URL."""
    url = citus.add_database(cluster, name)
    try:
        migrate.upgrade(url, roles)
        yield url
    finally:
        citus.drop_database(cluster, name)
