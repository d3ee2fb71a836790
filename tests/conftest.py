"""Test databases: a throwaway database per run on the configured server, else embedded.

With ``NEONPRO_DATABASE_URL`` set (CI points it at the PostgreSQL on 127.0.0.1:5432),
that server is used only to CREATE and DROP databases named ``neonpro_test_*``; the
database in the URL itself is never touched. Without it, a private embedded
PostgreSQL is started for the run and deleted afterwards.

With ``NEONPRO_TEST_CITUS`` set, the run starts a local Citus cluster of its own (a
coordinator and two workers, ``neonpro.devtools.citus``) and every test database is a
Citus database on it: the migrations distribute the schema (revision 0017), and the tests
run against the coordinator (``.ci/run`` runs the tenant-data tests this way too).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db import migrate
from neonpro.adapters.db.database import Database, normalise_url
from neonpro.adapters.db.embedded import EmbeddedPostgres
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.config import Environment, Settings
from neonpro.devtools import citus

# fails the session if any seeded CPF, CNS, e-mail, phone or name reaches a log line or an
# error message (tests/pii_guard.py)
pytest_plugins = ["tests.pii_guard"]

ROOT = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its directory: unit, integration, e2e or simulation."""
    for item in items:
        for kind in ("unit", "integration", "e2e", "simulation"):
            if (ROOT / kind) in Path(str(item.fspath)).parents:
                item.add_marker(getattr(pytest.mark, kind))


CITUS = bool(os.environ.get("NEONPRO_TEST_CITUS"))
_clusters: list[citus.LocalCluster] = []  # the run's Citus cluster, under NEONPRO_TEST_CITUS


def start_citus_cluster() -> citus.LocalCluster:
    """A local Citus cluster of this run's own (its own directory and free ports); skips
    where Citus is missing, fails instead where ``NEONPRO_REQUIRE_CITUS`` is set."""
    from tests.reliability.harness import free_port  # noqa: PLC0415

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
    return citus.up(base, port, workers=2, shard_count=4)


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A URL with CREATEDB on the test server (never used to change its own database)."""
    if CITUS:
        cluster = start_citus_cluster()
        _clusters.append(cluster)
        try:
            yield cluster.url(database="postgres")
        finally:
            _clusters.remove(cluster)
            citus.down(Path(cluster.base))
        return
    configured = os.environ.get("NEONPRO_DATABASE_URL")
    if configured:
        yield normalise_url(configured)
        return
    base = Path(tempfile.mkdtemp(prefix="neonpro-test-pg-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base)
    try:
        yield server.start()
    finally:
        server.destroy()


def create_database(admin: str, label: str = "test") -> str:
    name = f"neonpro_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    if _clusters:  # a Citus database: on every node, the workers registered
        return citus.add_database(_clusters[0], name)
    engine = create_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_database(admin: str, url: str) -> None:
    name = make_url(url).database
    if _clusters:
        citus.drop_database(_clusters[0], str(name))
        return
    engine = create_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def roles() -> Roles:
    return Roles()


@pytest.fixture(scope="session")
def database_url(admin_url: str, roles: Roles) -> Iterator[str]:
    """A database migrated to head, shared by the session's integration tests."""
    url = create_database(admin_url)
    try:
        migrate.upgrade(url, roles)
        yield url
    finally:
        drop_database(admin_url, url)


@pytest.fixture
def fresh_database_url(admin_url: str) -> Iterator[str]:
    """An empty database for one test (migration round trips, health failures)."""
    url = create_database(admin_url, "fresh")
    try:
        yield url
    finally:
        drop_database(admin_url, url)


@pytest.fixture
def second_database_url(admin_url: str) -> Iterator[str]:
    """Another empty database for one test (a restore target beside a source)."""
    url = create_database(admin_url, "second")
    try:
        yield url
    finally:
        drop_database(admin_url, url)


def make_settings(url: str, **overrides: object) -> Settings:
    return Settings(
        environment=Environment.TEST,
        database_url=url,
        _env_file=None,  # type: ignore[call-arg]
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    database = Database(make_settings(database_url))
    try:
        yield database
    finally:
        database.close()


def make_keyring() -> KeyRing:
    """Fresh random keys for one test run (never the development key file)."""
    return KeyRing(keys={"k1": os.urandom(32)}, active_id="k1", blind_index_key=os.urandom(32),
                   audit_key=os.urandom(32))


@pytest.fixture(scope="session")
def container(database_url: str) -> Iterator[Container]:
    box = Container(make_settings(database_url), database_url=database_url,
                    keyring=make_keyring())
    try:
        yield box
    finally:
        box.close()
