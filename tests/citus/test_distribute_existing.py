"""``neonpro db distribute``: a database built on one server, holding data, then given Citus
(docs/scaling.md, "Moving there"). Before it, the tables stay on the coordinator (the
migrations at head ran their single-server path); after it, the schema is exactly what the
migrations build on Citus (``db check`` compares with a scratch Citus database), every row
is still there, and a clinic sees its own patients and none of another's, through the
workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from neonpro.adapters.db import citus_nodes, migrate, schema_check
from neonpro.adapters.db.citus_sql import citus_tables
from neonpro.adapters.db.distribute import distribute
from neonpro.adapters.db.models import Base
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.devtools import citus
from neonpro.domain.actors import SystemActors
from neonpro.domain.operations import CannotDistribute
from neonpro.domain.paging import PageRequest
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import clinics, patients
from tests.conftest import make_keyring, make_settings
from tests.e2e.test_cli import run

DATABASE = "neonpro_distribute"


def _nodes(cluster: citus.LocalCluster) -> citus_nodes.Nodes:
    return citus_nodes.Nodes(("127.0.0.1", cluster.coordinator),
                             tuple(("127.0.0.1", p) for p in cluster.workers))


@pytest.fixture(scope="module")
def url(citus_cluster: citus.LocalCluster) -> Iterator[str]:
    """A plain database on the coordinator's server: no Citus extension yet."""
    with psycopg.connect(citus_cluster.url(database="postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    try:
        yield citus_cluster.url(database=DATABASE)
    finally:
        citus.drop_database(citus_cluster, DATABASE)


def _register(box: Container, clinic: uuid.UUID, names: list[str]) -> None:
    for name in names:
        patients.register_patient(box.uow(clinic, SystemActors.DEMO_SEED),
                                  PatientCreate(full_name=name))


def _names(box: Container, clinic: uuid.UUID) -> set[str]:
    page = patients.search_patients(box.uow(clinic, SystemActors.DEMO_SEED),
                                    page=PageRequest(limit=50, offset=0))
    return {p.full_name for p in page.items}


def test_a_database_with_data_is_distributed_in_place(
        url: str, citus_cluster: citus.LocalCluster, roles: Roles) -> None:
    migrate.upgrade(url, roles)  # one server: 0017-0020 take their single-server path
    box = Container(make_settings(url), database_url=url, keyring=make_keyring())
    try:
        a = clinics.create_clinic(box.service_uow(SystemActors.CLI), ClinicCreate(name="A")).id
        b = clinics.create_clinic(box.service_uow(SystemActors.CLI), ClinicCreate(name="B")).id
        _register(box, a, ["Ana Antes", "Alice Antes"])
        _register(box, b, ["Bruno Antes"])
    finally:
        box.close()
    with pytest.raises(CannotDistribute, match="no Citus extension"):
        distribute(url, roles)
    refused = run(url, "db", "distribute")
    assert refused.returncode == 1
    assert "no Citus extension" in refused.stderr

    citus_nodes.create_database(url, _nodes(citus_cluster), DATABASE)  # the operator's step
    done = run(url, "db", "distribute")  # as an operator runs it
    assert done.returncode == 0, done.stderr
    tables = len(citus_tables(Base.metadata)) - 1  # the outbox is new here
    said = (f"distributed: {tables} table(s) made distributed or reference tables, "
            f"{len(citus_cluster.workers)} worker(s)")
    assert said in done.stdout
    assert distribute(url, roles).tables == 0  # again: nothing changes

    assert schema_check.check_live(url, url, roles).differences == []
    box = Container(make_settings(url), database_url=url, keyring=make_keyring())
    try:
        _register(box, a, ["Ana Depois"])
        assert _names(box, a) == {"Ana Antes", "Alice Antes", "Ana Depois"}
        assert _names(box, b) == {"Bruno Antes"}
    finally:
        box.close()
    with psycopg.connect(url, autocommit=True) as conn:
        kinds = conn.execute("SELECT count(*) FROM pg_dist_partition").fetchone()
        # the coordinator's own tables keep no copy of the rows (an erasure on the shards
        # would never reach one): the copy Citus leaves there is truncated
        conn.execute("SET citus.enable_manual_changes_to_shards = on")
        left = [t for (t,) in conn.execute(
            "SELECT logicalrelid::regclass::text FROM pg_dist_partition")
            if conn.execute(f"SELECT pg_relation_size('{t}')").fetchone() != (0,)]
    assert kinds == (len(citus_tables(Base.metadata)),)
    assert left == []
