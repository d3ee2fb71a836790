"""Tests against a local Citus cluster (``neonpro.devtools.citus``): a coordinator and two
workers on private ports. Skipped where Citus is not installed, with the reason; required
where ``NEONPRO_REQUIRE_CITUS`` is set (``.ci/run`` sets it after installing Citus)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from neonpro.devtools import citus
from tests.reliability.harness import free_port

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
    try:
        citus.requirements()
    except citus.CitusUnavailable as exc:
        if os.environ.get("NEONPRO_REQUIRE_CITUS"):
            pytest.fail(str(exc))  # .ci/run installs Citus: there these tests must run
        pytest.skip(str(exc))
    base = Path(tempfile.mkdtemp(prefix="neonpro-citus-test-", dir="/tmp"))
    port = free_port()
    while not all(citus.port_free(port + i) for i in range(3)):
        port = free_port()
    try:
        yield citus.up(base, port, workers=2, shard_count=4)
    finally:
        citus.down(base)
