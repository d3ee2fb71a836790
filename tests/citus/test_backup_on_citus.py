"""``neonpro backup`` on a Citus coordinator refuses, saying why and what to do instead
(docs/scaling.md, "Backups on Citus"): pg_dump reads each worker in a snapshot of its own,
so a backup taken under writes is no single moment of the cluster. Nothing is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.devtools import citus
from neonpro.services import backup as svc
from tests.conftest import make_keyring, make_settings

DATABASE = "neonpro_backup"


@pytest.fixture
def box(citus_cluster: citus.LocalCluster, roles: Roles, tmp_path: Path) -> Iterator[Container]:
    url = citus.add_database(citus_cluster, DATABASE)
    migrate.upgrade(url, roles)
    container = Container(make_settings(url, backup_dir=tmp_path / "backups"), database_url=url,
                          keyring=make_keyring())
    try:
        yield container
    finally:
        container.close()
        citus.drop_database(citus_cluster, DATABASE)


def test_a_backup_of_a_coordinator_is_refused_with_the_reason(box: Container,
                                                               tmp_path: Path) -> None:
    with pytest.raises(svc.BackupError, match=r"no single moment of the cluster.*pgBackRest"):
        svc.create_backup(box)
    backups = tmp_path / "backups"
    assert not backups.exists() or not any(backups.rglob("*.dump"))
