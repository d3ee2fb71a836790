"""Moving a busy clinic on Citus (issue 19, item 6; docs/scaling.md "Moving a clinic").

The adversary is the operation itself: while the API serves a clinic's staff (patients
registered, read back and listed, as fast as the server answers), the operator isolates the
clinic to shards of its own and moves them to the other worker and back. No request may
fail, and every patient the API acknowledged must be there afterwards, on its new shard."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.devtools import citus
from neonpro.devtools.clinic_move import MoveReport, move_under_load
from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.services import clinics
from tests.conftest import make_keyring, make_settings

DATABASE = "neonpro_move"


@pytest.fixture(scope="module")
def box(citus_cluster: citus.LocalCluster, roles: Roles) -> Iterator[Container]:
    url = citus.add_database(citus_cluster, DATABASE)
    migrate.upgrade(url, roles)
    container = Container(make_settings(url), database_url=url, keyring=make_keyring())
    try:
        yield container
    finally:
        container.close()
        citus.drop_database(citus_cluster, DATABASE)


@pytest.fixture(scope="module")
def busy(box: Container) -> uuid.UUID:
    clinics.create_clinic(box.service_uow(SystemActors.CLI), ClinicCreate(name="Vizinha"))
    return clinics.create_clinic(box.service_uow(SystemActors.CLI),
                                 ClinicCreate(name="Clínica movida")).id


@pytest.fixture(scope="module")
def report(box: Container, citus_cluster: citus.LocalCluster, busy: uuid.UUID) -> MoveReport:
    return move_under_load(box, citus_cluster.url(database=DATABASE), busy, clients=3,
                           settle=1.5)


def test_no_request_fails_while_the_clinic_moves(report: MoveReport) -> None:
    assert [name for name, _ in report.steps] == [
        "isolate the clinic to shards of its own", "move to the other worker", "move back"]
    assert report.load.failures == []
    for start, end in report.windows:  # the load really ran while each step did
        assert any(start <= t <= end for t, _ in report.load.samples)
    assert len(report.load.acknowledged) > 20


def test_every_acknowledged_patient_is_found_after_the_moves(report: MoveReport) -> None:
    assert report.found == len(report.load.acknowledged)


def test_the_clinic_ends_on_a_shard_of_its_own(report: MoveReport, busy: uuid.UUID,
                                               citus_cluster: citus.LocalCluster) -> None:
    """The isolation happened: the clinic's shard covers its hash value alone, and it holds
    exactly the patients the API acknowledged."""
    with psycopg.connect(citus_cluster.url(database=DATABASE), autocommit=True) as conn:
        bounds = conn.execute(
            "SELECT shardminvalue, shardmaxvalue FROM pg_dist_shard WHERE shardid = "
            "get_shard_id_for_distribution_column('patients', %s)", (busy,)).fetchone()
        rows = conn.execute("SELECT count(*) FROM patients WHERE clinic_id = %s",
                            (busy,)).fetchone()
    assert bounds is not None
    assert bounds[0] == bounds[1]
    assert rows == (len(report.load.acknowledged),)
