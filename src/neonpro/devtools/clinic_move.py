"""Moving a busy clinic on a Citus cluster while the API serves it (docs/scaling.md).

The API (``create_app``, a real uvicorn server on a free port of this machine) serves a
clinic's staff: client threads register patients, read them back one by one and list them,
as fast as the server answers. Meanwhile the operator's steps run on the coordinator:

1. ``isolate_tenant_to_new_shard(..., 'CASCADE')``: the clinic's rows of every co-located
   table get shards of their own;
2. ``citus_move_shard_placement`` of those shards to the other worker, then back.

Both copy with ``shard_transfer_mode => 'block_writes'``: the clinic's writes wait during
the copy, reads go on. The online mode (``force_logical``, logical replication) cannot move
our tables under writes: Citus applies the changes as a role of its own that is a member of
the table's owner, and PostgreSQL refuses to replicate into a table whose row-level security
is forced for its owner ("cannot replicate into relation with row-level security enabled";
measured, docs/scaling.md). Every request is counted: a failure is
any answer other than the one expected, or no answer. Afterwards every patient the API
acknowledged (201) is read back through the API.

Used by ``tests/citus/test_moving_a_clinic.py`` (zero failures, nothing lost) and by
``bench/citus_move.py`` (the figures recorded in docs/scaling.md).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import uvicorn

from neonpro.adapters.auth import TokenCodec
from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.vocabulary import ClinicRole
from neonpro.services import auth

MODE = "block_writes"  # see the module's docstring
CREATED, OK = 201, 200
MAX_ATTEMPTS = 5


@dataclass
class Load:
    """What the clients saw, in the order they saw it."""

    acknowledged: list[str] = field(default_factory=list)  # patient ids answered 201
    failures: list[str] = field(default_factory=list)  # "METHOD path -> status" (no data)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class MoveReport:
    steps: list[tuple[str, float]]  # (what the operator did, seconds)
    windows: list[tuple[float, float]]  # when each step ran (perf_counter)
    load: Load
    found: int  # acknowledged patients read back after the moves
    retries: list[str] = field(default_factory=list)  # steps Citus cancelled, run again

    @property
    def requests(self) -> int:
        return len(self.load.samples) + len(self.load.failures)

    def latency_ms(self, *, during: bool) -> tuple[float, float, float]:
        """Median, 99th percentile and maximum of the requests that started during a step
        (``during``) or outside every step."""
        chosen = [s * 1000 for t, s in self.load.samples
                  if any(a <= t <= b for a, b in self.windows) is during]
        if len(chosen) < 2:  # noqa: PLR2004  (quantiles need two)
            return (0.0, 0.0, 0.0)
        cuts = statistics.quantiles(chosen, n=100, method="inclusive")
        return (statistics.median(chosen), cuts[98], max(chosen))


def move_under_load(box: Container, admin_url: str, clinic: uuid.UUID, *,
                    clients: int = 4, settle: float = 2.0) -> MoveReport:
    """Serve ``clinic`` through the API with ``clients`` threads, isolate it and move it to
    the other worker and back (``admin_url``: the coordinator, as a superuser)."""
    load = Load()
    stop = threading.Event()
    retries: list[str] = []
    with _serving(box) as base:
        token = _token(box, clinic)
        threads = [threading.Thread(target=_client, args=(base, token, load, stop, n))
                   for n in range(clients)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(settle)
            steps, windows = _operator_steps(admin_url, clinic, retries)
            time.sleep(settle)
        finally:  # the clients stop before the server does, whatever happened
            stop.set()
            for thread in threads:
                thread.join()
        found = _read_back(base, token, load.acknowledged)
    return MoveReport(steps, windows, load, found, retries)


@contextmanager
def _serving(box: Container) -> Iterator[str]:
    from neonpro.entrypoints.api.app import create_app  # noqa: PLC0415  (heavy)

    # log_config=None: uvicorn leaves the process's logging as neonpro configured it
    config = uvicorn.Config(create_app(box), host="127.0.0.1", port=0, log_level="warning",
                            log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _token(box: Container, clinic: uuid.UUID) -> str:
    """A development token of the clinic's admin, with its session."""
    issued = TokenCodec(box.settings, box.keyring).mint(uuid.uuid4(), clinic, ClinicRole.ADMIN)
    return auth.open_development_session(box.service_uow(SystemActors.CLI), issued).token


def _client(base: str, token: str, load: Load, stop: threading.Event, n: int) -> None:
    """Register, read back and (every tenth request) list patients until ``stop``."""
    with httpx.Client(base_url=base, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        i = 0
        while not stop.is_set():
            i += 1
            _request(http, load, "POST", "/patients", CREATED,
                     json={"full_name": f"Paciente Carga {n}-{i}"})
            with load.lock:
                last = load.acknowledged[-1] if load.acknowledged else None
            if last:
                _request(http, load, "GET", f"/patients/{last}", OK)
            if i % 10 == 0:
                _request(http, load, "GET", "/patients?limit=20&with_total=false", OK)


def _request(http: httpx.Client, load: Load, method: str, path: str, expected: int,
             **kwargs: object) -> None:
    started = time.perf_counter()
    try:
        response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        failure = f"{method} {path.split('?')[0]} -> {type(exc).__name__}"
        with load.lock:
            load.failures.append(failure)
        return
    elapsed = time.perf_counter() - started
    with load.lock:
        if response.status_code != expected:
            load.failures.append(f"{method} {path.split('?')[0]} -> {response.status_code}")
            return
        load.samples.append((started, elapsed))
        if method == "POST":
            load.acknowledged.append(response.json()["id"])


def _operator_steps(admin_url: str, clinic: uuid.UUID, retries: list[str],
                    ) -> tuple[list[tuple[str, float]], list[tuple[float, float]]]:
    """Isolate the clinic, move its shards to the other worker and back: each step timed."""
    steps: list[tuple[str, float]] = []
    windows: list[tuple[float, float]] = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        def step(name: str, query: str, *args: object) -> None:
            started = time.perf_counter()
            _with_retries(conn, query, args, name, retries)
            windows.append((started, time.perf_counter()))
            steps.append((name, windows[-1][1] - started))

        step("isolate the clinic to shards of its own",
             "SELECT isolate_tenant_to_new_shard('patients', %s, 'CASCADE', "
             f"shard_transfer_mode => '{MODE}')", clinic)
        shard, home = _placement(conn, clinic)
        other = _other_worker(conn, home)
        for name, source, target in (("move to the other worker", home, other),
                                     ("move back", other, home)):
            step(name, "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, "
                 f"shard_transfer_mode => '{MODE}')", shard, *source, *target)
    return steps, windows


def _with_retries(conn: psycopg.Connection[tuple[Any, ...]], query: str,
                  args: tuple[object, ...], name: str, retries: list[str]) -> None:
    """Run an operator's step, as an operator would: first drop what earlier steps left
    (a moved shard's old placement is deleted later, and moving back onto that node finds
    it); when Citus's deadlock detector cancels the step (it blocks the clinic's writes and
    waits for transactions in flight, which may wait on it in turn) or a leftover could not
    be dropped yet, clean up and run it again."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        conn.execute("CALL citus_cleanup_orphaned_resources()")
        try:
            conn.execute(query, args)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.InternalError) as exc:
            if attempt == MAX_ATTEMPTS or not _retryable(exc):
                raise
            retries.append(name)
            time.sleep(0.5 * attempt)
        else:
            return


def _retryable(exc: psycopg.Error) -> bool:
    return isinstance(exc, psycopg.errors.DeadlockDetected) or \
        "could not be cleaned up" in str(exc)


def _placement(conn: psycopg.Connection[tuple[Any, ...]], clinic: uuid.UUID,
               ) -> tuple[int, tuple[str, int]]:
    row: tuple[Any, ...] | None = conn.execute(
        "SELECT s.shardid, n.nodename, n.nodeport FROM pg_dist_shard s "
        "JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid) "
        "WHERE s.shardid = get_shard_id_for_distribution_column('patients', %s)",
        (clinic,)).fetchone()
    if row is None:
        raise LookupError("the clinic's shard has no placement")
    return int(row[0]), (str(row[1]), int(row[2]))


def _other_worker(conn: psycopg.Connection[tuple[Any, ...]],
                  home: tuple[str, int]) -> tuple[str, int]:
    rows: list[tuple[Any, ...]] = conn.execute("SELECT nodename, nodeport FROM pg_dist_node "
                        "WHERE groupid > 0 AND noderole = 'primary' AND isactive").fetchall()
    return next((str(h), int(p)) for h, p in rows if (h, p) != home)


def _read_back(base: str, token: str, ids: list[str]) -> int:
    """How many of ``ids`` the API returns now."""
    with httpx.Client(base_url=base, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        return sum(http.get(f"/patients/{pid}").status_code == OK for pid in ids)
