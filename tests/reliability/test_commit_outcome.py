"""A lost COMMIT acknowledgement is never resolved into a 2xx for a write that is not there.

The fault-injection trial of issue 14: a transaction writes and reads its id X; the server
dies before the commit record reaches disk; after the restart the next write of another
session is given the same X, and ``pg_xact_status(X)`` then says "committed" about a write
that was lost. Here the sequence is played deterministically on a private cluster: the
walwriter is paused and the transaction commits asynchronously (so its commit record stays
in the WAL buffers), the whole cluster is killed with SIGKILL, restarted, another session
writes and gets X; only then does the unit of work hear that its connection broke.
"""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from neonpro.adapters.db.deadline import CommitOutcomeUnknown
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.services import clinics
from tests.reliability.harness import SYSTEM, PrivateCluster, restart_world

INSERT = ("INSERT INTO service_types (clinic_id, name, duration_minutes) "
          "VALUES (%s, %s, 30) RETURNING id")


def _walwriter(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'"
                           ).fetchone()
    assert row is not None
    return int(row[0])


def _write_until(url: str, clinic: uuid.UUID, xid: int) -> list[int]:
    """Another session's writes after the restart, until one is given ``xid`` or a later
    one; the transaction ids they were given."""
    given: list[int] = []
    with psycopg.connect(url, autocommit=True) as conn:
        while not given or given[-1] < xid:
            with conn.transaction():
                conn.execute(INSERT, (clinic, f"Outra sessão {len(given)}"))
                row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
                assert row is not None
                given.append(int(row[0]))
    return given


class CrashBeforeTheCommitRecordIsOnDisk:
    """Stands in for the unit of work's transaction. COMMIT really happens, asynchronously,
    with the walwriter paused; then the cluster dies, restarts, and another session is given
    this transaction's id; only then does the connection "break" for the unit of work."""

    def __init__(self, real: Any, connection: Any, cluster: PrivateCluster,
                 clinic: uuid.UUID) -> None:
        self.real, self.connection, self.cluster, self.clinic = real, connection, cluster, clinic
        self.xid = 0
        self.reused: list[int] = []

    @property
    def is_active(self) -> bool:
        return bool(self.real.is_active)

    def commit(self) -> None:
        url = self.cluster.url("neonpro")
        self.xid = int(self.connection.execute(text(
            "SELECT pg_current_xact_id()::text::bigint")).scalar_one())
        self.connection.execute(text("SET LOCAL synchronous_commit = off"))
        walwriter = _walwriter(url)
        os.kill(walwriter, signal.SIGSTOP)  # nothing flushes the WAL buffers now
        try:
            self.real.commit()  # acknowledged; the commit record is only in memory
        finally:
            self.cluster.crash(children=True)  # the whole cluster dies at once
        self.cluster.start()
        self.reused = _write_until(url, self.clinic, self.xid)
        raise OperationalError("COMMIT", {}, psycopg.OperationalError(
            "server closed the connection unexpectedly"), connection_invalidated=True)

    def rollback(self) -> None:
        return


def test_a_transaction_id_reused_after_a_crash_is_not_taken_for_our_commit(
        cluster: PrivateCluster) -> None:
    box, _url = restart_world(cluster)
    try:
        clinic = clinics.create_clinic(box.service_uow(SYSTEM),
                                       ClinicCreate(name="Clínica Xid")).id
        # the sequence depends on what reached the disk before the crash: if the insert's
        # WAL record was flushed (by anything else), recovery moves past its id and no one
        # is given it; then that attempt proves less, and the scenario is tried again
        for _attempt in range(4):
            name = f"Perdido no crash {uuid.uuid4().hex[:6]}"
            with box.uow(clinic, Actor(uuid.uuid4(), "admin")) as tx:
                tx.connection.execute(text(
                    "INSERT INTO service_types (clinic_id, name, duration_minutes) "
                    "VALUES (:c, :n, 30)"), {"c": clinic, "n": name})
                fake = CrashBeforeTheCommitRecordIsOnDisk(tx._transaction, tx.connection,
                                                          cluster, clinic)
                tx._transaction = fake  # type: ignore[assignment]
                try:
                    tx.commit()
                    reported = "committed"
                except CommitOutcomeUnknown:
                    reported = "unknown"
                except OperationalError:
                    reported = "failed"
            with psycopg.connect(cluster.url("neonpro"), autocommit=True) as conn:
                present = conn.execute("SELECT count(*) FROM service_types WHERE name = %s",
                                       (name,)).fetchone() == (1,)
            assert not present  # the write was lost with the crash
            assert reported != "committed"  # ... and never reported committed
            if fake.xid in fake.reused:
                break
    finally:
        box.close()
    # the sequence of the trial really happened: another session's write was given the lost
    # transaction's id
    assert fake.xid in fake.reused, (fake.xid, fake.reused)
    # ... and the unit of work did not report the lost write as committed
    assert reported == "unknown"  # the server restarted: it does not guess "failed" either
