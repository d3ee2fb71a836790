"""The statements of one clinic stay on that clinic's shard (docs/scaling.md, "Measured").

``citus.multi_task_query_log_level = 'error'`` turns any statement that reaches more than
one shard into an error. ``bench/citus.py`` found the retention plan's due-patient queries
and the no-show features query fanning out to every shard although they name one clinic
(their subqueries were joined to the outer row by column): each is run here that way, and
must not fail."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import TextClause

from neonpro.adapters.db.repositories.erasure import FOR_REQUEST, HAS_ENTRY
from neonpro.adapters.db.repositories.noshow import COMING, LABELLED
from neonpro.adapters.db.repositories.retention import HOLD_EXPIRED, INACTIVE
from neonpro.adapters.db.security import Roles
from neonpro.devtools import citus
from tests.citus.conftest import migrated_database

DATABASE = "neonpro_router"
NOW = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def url(citus_cluster: citus.LocalCluster, roles: Roles) -> Iterator[str]:
    with migrated_database(citus_cluster, roles, DATABASE) as url:
        yield url


def _psycopg(statement: TextClause) -> str:
    """The statement with psycopg's placeholders (``:name`` -> ``%(name)s``)."""
    return re.sub(r"(?<![:\w]):(\w+)\b", r"%(\1)s", str(statement))


@pytest.mark.parametrize(("statement", "params"), [
    (INACTIVE, {"c": uuid.uuid4(), "cutoff": NOW}),
    (HOLD_EXPIRED, {"c": uuid.uuid4(), "cutoff": NOW}),
    (LABELLED, {"clinic": uuid.uuid4(), "as_of": NOW}),
    (COMING, {"clinic": uuid.uuid4(), "as_of": NOW, "until": NOW}),
    (HAS_ENTRY, {"clinic": uuid.uuid4(), "patient": uuid.uuid4()}),
    (FOR_REQUEST, {"clinic": uuid.uuid4(), "request": uuid.uuid4()}),
], ids=["retention: inactive", "retention: hold expired", "no-show: labelled",
        "no-show: coming", "erasure: a patient's entry", "erasure: a request's"])
def test_a_clinics_statement_reaches_one_shard(url: str, statement: TextClause,
                                               params: dict[str, object]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET citus.multi_task_query_log_level = 'error'")
        conn.execute(_psycopg(statement), params).fetchall()
