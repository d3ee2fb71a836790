"""Managed database clients: engines, pools, tenant and service sessions, retries.

One :class:`Database` per process, built from settings by the composition root.
Nothing connects until a session is first asked for. Each kind of work has its own pool
on its own login (``logins.py``): tenant work on the application login, cross-clinic work
on the service login, legal-hold reads on theirs; no session ever changes role. Every
transaction starts with one round trip that sets the clinic and the acting user with
``set_config(..., true)`` (transaction-local, so a pooled connection never carries a
tenant into the next transaction) and binds them to the transaction
(``neonpro_bind_context``: the audit trail refuses events of a context changed later).
"""

from __future__ import annotations

import atexit
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg.errors
import structlog
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from neonpro.adapters.db.deadline import Outcome
from neonpro.adapters.db.durability_sql import (
    BACKEND_IDENTITY,
    BACKEND_NOW,
    LOOKUP_SQL,
    TERMINATE,
)
from neonpro.adapters.db.logins import login_url
from neonpro.adapters.db.security import Roles
from neonpro.config import Environment

if TYPE_CHECKING:
    from neonpro.adapters.db.embedded import EmbeddedPostgres
    from neonpro.config import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

# A server tuned for speed (synchronous_commit = off) acknowledges a COMMIT before its record
# is on disk, and a crash then loses it: every transaction of ours waits for its own flush
# (other values are kept: local, remote_write, remote_apply are all durable locally).
DURABLE_COMMIT = ("set_config('synchronous_commit', CASE current_setting('synchronous_commit') "
                  "WHEN 'off' THEN 'on' ELSE current_setting('synchronous_commit') END, true)")
# sets every app.* setting and binds them to the transaction (audit_sql.py)
SET_CONTEXT = text(
    "SELECT neonpro_bind_context(:clinic_id, :actor_id, :actor_role, :request_id, :ip, "
    ":user_agent, :session_id), " + DURABLE_COMMIT
)
# a read-only transaction writes no audit event: the settings alone (no binding, which
# needs a transaction id a standby cannot give), set by a function so that on Citus they
# reach the workers too (audit_sql.context.read_context)
SET_CONTEXT_READ_ONLY = text(
    "SELECT neonpro_read_context(:clinic_id, :actor_id, :actor_role, :request_id, :ip, "
    ":user_agent, :session_id), " + DURABLE_COMMIT
)
# the same, and the transaction's statements bounded by the time the request has left
SET_CONTEXT_BOUNDED = text(
    str(SET_CONTEXT) + ", set_config('statement_timeout', :statement_timeout, true)"
)
def context_params(
    clinic_id: uuid.UUID | None, actor_id: uuid.UUID, actor_role: str,
    *, request_id: str | None = None, ip: str | None = None, user_agent: str | None = None,
    session_id: str | None = None,
) -> dict[str, str]:
    """Parameters of :data:`SET_CONTEXT`; the audit triggers read these settings."""
    return {
        "clinic_id": str(clinic_id) if clinic_id else "",
        "actor_id": str(actor_id), "actor_role": actor_role, "request_id": request_id or "",
        "ip": ip or "", "user_agent": (user_agent or "")[:500], "session_id": session_id or "",
    }

_TRANSIENT = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.AdminShutdown,
    psycopg.errors.CannotConnectNow,
)
_TIMED_OUT = (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying the whole transaction for; never constraint errors."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        if isinstance(orig, _TRANSIENT):
            return True
        if isinstance(orig, _TIMED_OUT):
            return False  # the same statement would time out again
        return isinstance(exc, OperationalError) and isinstance(orig, psycopg.OperationalError)
    return False


def is_timeout(exc: BaseException) -> bool:
    """A statement cancelled by ``statement_timeout`` (or a lock wait past ``lock_timeout``)."""
    return isinstance(exc, DBAPIError) and isinstance(exc.orig, _TIMED_OUT)


BACKEND = "neonpro_backend"  # key of a pooled connection's info: its server process


@dataclass(frozen=True)
class Backend:
    """Who a connection is on the server: process id, its start, the server's start."""

    pid: int
    started: datetime
    server_started: datetime


@dataclass(frozen=True)
class CommitCheck:
    """What a transaction left to find out later whether it committed: its random token
    (inserted in the transaction itself) and the server process that ran it."""

    clinic_id: uuid.UUID
    token: uuid.UUID
    backend: Backend | None


_RETRY = object()  # the outcome cannot be decided yet: ask again


def _remember_backend(dbapi_connection: Any, record: Any) -> None:
    """On every new pooled connection: remember its server process (one query, once)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(BACKEND_IDENTITY)
        row = cursor.fetchone()
    finally:
        cursor.close()
        dbapi_connection.rollback()
    if row is not None:
        record.info[BACKEND] = Backend(*row)


@dataclass(frozen=True)
class PoolStats:
    size: int
    checked_in: int
    checked_out: int
    overflow: int


class Database:
    """Engines and session factories for one neonpro database."""

    def __init__(
        self,
        settings: Settings,
        *,
        url: str | None = None,
        embedded: EmbeddedPostgres | None = None,
    ) -> None:
        self.settings = settings
        self.roles = Roles(settings.owner_role, settings.app_role, settings.service_role,
                           settings.legal_hold_role)
        self._url = url
        self._embedded = embedded
        self._lock = threading.Lock()
        self._engines: dict[str, Engine] = {}
        # kind -> its engine: every transaction asks; deriving the login's URL each time
        # (its password an HMAC of the configured one) was 3 % of a patient list's CPU
        self._by_kind: dict[str, Engine] = {}
        self._factories: dict[Engine, sessionmaker[Session]] = {}
        self._closed = False
        atexit.register(self.close)

    # ------------------------------------------------------------------ urls
    @property
    def owner_url(self) -> str:
        """The configured URL (``NEONPRO_DATABASE_URL``): the owner's login, or in development
        and tests a superuser's that bootstraps the logins. Starts the embedded server if
        that is the configured default. Migrations, backups and schema checks use it."""
        if self._url is None:
            if self.settings.database_url is not None:
                self._url = self.settings.database_url.get_secret_value()
            else:
                if self._embedded is None:
                    from neonpro.adapters.db.embedded import EmbeddedPostgres  # noqa: PLC0415

                    self._embedded = EmbeddedPostgres(
                        self.settings.embedded_dir, os_user=self.settings.embedded_os_user
                    )
                self._url = self._embedded.start()
        return normalise_url(self._url)

    @property
    def connected(self) -> bool:
        """Whether any engine (pool) was created: nothing to release or seal otherwise."""
        return bool(self._engines)

    @property
    def embedded(self) -> EmbeddedPostgres | None:
        return self._embedded

    def url_for(self, kind: str) -> str:
        """The URL of ``kind``'s login: ``owner``, ``app``, ``service``, ``legal_hold`` or
        ``replica`` (the application login on a replica; the primary if none is set).

        Given explicitly (``NEONPRO_APP_DATABASE_URL``...), or derived from the one
        configured URL outside production (``logins.login_url``)."""
        if kind == "owner":
            return self.owner_url
        explicit = {
            "app": self.settings.app_database_url,
            "service": self.settings.service_database_url,
            "legal_hold": self.settings.legal_hold_database_url,
            "replica": self.settings.replica_database_url,
        }.get(kind)
        if explicit is not None:
            return normalise_url(explicit.get_secret_value())
        if kind == "replica":
            return self.url_for("app")
        role = {"app": self.roles.app, "service": self.roles.service,
                "legal_hold": self.roles.legal_hold}[kind]
        if self.settings.environment is Environment.PRODUCTION:
            msg = (f"production needs NEONPRO_{kind.upper()}_DATABASE_URL: the {role} login "
                   "is not derived from NEONPRO_DATABASE_URL there")
            raise RuntimeError(msg)
        return normalise_url(login_url(self.owner_url, role))

    # --------------------------------------------------------------- engines
    def engine(self, kind: str = "owner") -> Engine:
        """The pooled engine for ``owner``, ``app``, ``service`` or ``replica`` work.

        Kinds that resolve to the same URL share one engine (one pool).
        """
        engine = self._by_kind.get(kind)
        if engine is not None and not self._closed:
            return engine
        with self._lock:
            if self._closed:
                raise RuntimeError("database is closed")
            url = self.url_for(kind)
            engine = self._engines.get(url)
            if engine is None:
                engine = self._create_engine(url)
                self._engines[url] = engine
            self._by_kind[kind] = engine
            return engine

    def _create_engine(self, url: str) -> Engine:
        s = self.settings
        timeout_ms = s.pool_setting("statement_timeout_ms")
        engine = create_engine(
            url,
            pool_size=s.pool_setting("pool_size"),
            max_overflow=s.pool_setting("max_overflow"),
            pool_timeout=s.pool_setting("pool_timeout_s"),
            pool_recycle=s.pool_setting("pool_recycle_s"),
            pool_pre_ping=False,  # see checked_out: a dropped connection is replaced
            pool_reset_on_return="rollback",
            # a DBAPIError's text names no parameter values (a patient's name in a search,
            # a CPF's blind index): only the statement; repositories log its origin alone
            hide_parameters=True,
            connect_args={
                "connect_timeout": s.connect_timeout_s,
                "application_name": "neonpro",
                # startup parameters, identical for every connection of the pool
                "options": f"-c statement_timeout={timeout_ms} -c TimeZone=UTC",
            },
        )
        event.listen(engine, "connect", _remember_backend)
        return engine

    # -------------------------------------------------------------- sessions
    def _factory(self, kind: str) -> sessionmaker[Session]:
        engine = self.engine(kind)
        factory = self._factories.get(engine)
        if factory is None:
            factory = sessionmaker(engine, expire_on_commit=False)
            self._factories[engine] = factory
        return factory

    def transaction(self, kind: str, clinic_id: uuid.UUID | None, actor_id: uuid.UUID,
                    actor_role: str = "system", *, read_only: bool = False) -> Any:
        """One transaction as the login ``kind`` ("app", "service", "replica"), its tenant
        context set, for an adapter's infrastructure work (sealing, pruning, probes);
        services use the unit of work. Nothing is committed unless the block calls
        ``session.commit()`` (last): leaving it otherwise rolls back."""
        return self._transaction(kind, clinic_id, actor_id, actor_role, read_only=read_only)

    @contextmanager
    def _transaction(self, kind: str, clinic_id: uuid.UUID | None, actor_id: uuid.UUID,
                     actor_role: str, *, read_only: bool) -> Iterator[Session]:
        params = context_params(clinic_id, actor_id, actor_role)
        for attempt in (1, 2):  # a dropped pooled connection is replaced once (checked_out)
            session = self._factory(kind)()
            try:
                if read_only:
                    session.execute(text("SET TRANSACTION READ ONLY"))
                    session.execute(SET_CONTEXT_READ_ONLY, params)
                else:
                    session.execute(SET_CONTEXT, params)
                break
            except DBAPIError as exc:
                session.close()
                if attempt == 2 or not exc.connection_invalidated:  # noqa: PLR2004
                    raise
            except BaseException:
                session.close()
                raise
        with session:
            session.info.update(
                kind=kind, clinic_id=clinic_id, actor_id=actor_id, read_only=read_only
            )
            yield session
            # the session closes here: a transaction not committed is rolled back

    def checked_out(self, kind: str, first: Callable[[Connection], T], *,
                    autocommit: bool = False) -> tuple[Connection, T]:
        """A pooled connection of ``kind`` on which ``first`` (what a transaction starts
        with: its context) has run, and what it returned.

        The pool pings no connection at checkout (a round trip per transaction, measured in
        docs/performance.md): a connection the server dropped while it sat in the pool (a
        restart, an idle kill) fails ``first``, before anything of the caller's has run on
        it, and is replaced once; the pool then replaces every connection older than the
        failure at its next checkout."""
        for attempt in (1, 2):
            connection = self.engine(kind).connect()
            if autocommit:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            try:
                return connection, first(connection)
            except DBAPIError as exc:
                connection.close()
                if attempt == 2 or not exc.connection_invalidated:  # noqa: PLR2004
                    raise
                log.warning("pooled_connection_dropped", kind=kind)
            except BaseException:
                connection.close()
                raise
        raise AssertionError  # pragma: no cover  (the loop returns or raises)

    def commit_outcome(self, check: CommitCheck, budget_s: float) -> Outcome | None:
        """Whether the transaction of ``check`` committed, asked on new connections for up
        to ``budget_s`` seconds (the database may be restarting); None if it cannot say.

        * its token is there: it committed (a token is random: no other transaction has it);
        * the server restarted since it ran: None. Its absence would mean "lost", but the
          server that answers may not be the one that ran it (a failover), so we do not
          guess; the client retries with its idempotency key;
        * its server process is gone, or idle outside any transaction: it ended without
          committing (a transaction that committed is visible once its process is idle);
        * its process is still in the transaction (the network broke, the server has not
          noticed): it is terminated, which ends the transaction, and we ask again.

        The state of the process is read before the token, each in its own snapshot, so a
        commit that ends between the two reads is seen. Connections are opened outside the
        pool (a full pool must not make a committed write look failed) with the login of
        the application's connections, which may end its own processes."""
        give_up = time.monotonic() + budget_s
        delay = 0.05
        url = self.engine("app").url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        while True:
            wait = max(1, int(give_up - time.monotonic()))
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=wait,
                                     application_name="neonpro-commit-check") as conn:
                    outcome = _decide(conn, check)
                if outcome is not _RETRY:
                    return outcome  # type: ignore[return-value]
            except psycopg.OperationalError:
                pass  # still restarting: ask again
            except psycopg.Error as exc:
                log.error("commit_outcome_query_failed", error=type(exc).__name__)  # noqa: TRY400  (class only, no driver text)
                return None
            if time.monotonic() + delay > give_up:
                log.error("commit_outcome_unknown")
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` (one whole transaction) with bounded retries on transient errors."""
        attempts = self.settings.retry_attempts
        for attempt in range(1, attempts + 1):
            try:
                return work()
            except DBAPIError as exc:
                if attempt == attempts or not is_transient(exc):
                    raise
                delay = self.settings.retry_base_delay_s * (2 ** (attempt - 1))
                delay *= 1 + random.random() / 2  # noqa: S311  (jitter, not crypto)
                log.warning("db_retry", attempt=attempt, error=type(exc.orig).__name__)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------- lifecycle
    def pool_stats(self) -> dict[str, PoolStats]:
        """Pool usage per engine URL host/db (no credentials)."""
        out: dict[str, PoolStats] = {}
        for engine in list(self._engines.values()):
            pool: Any = engine.pool
            key = f"{engine.url.host}:{engine.url.port}/{engine.url.database}"
            out[key] = PoolStats(pool.size(), pool.checkedin(), pool.checkedout(), pool.overflow())
        return out

    def close(self) -> None:
        """Close every pool and stop the embedded server if this process started it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
            self._by_kind.clear()
            self._factories.clear()
        if self._embedded is not None:
            self._embedded.stop()
        atexit.unregister(self.close)


def _decide(conn: psycopg.Connection[Any], check: CommitCheck) -> Outcome | None | object:
    backend = check.backend
    server, state = None, None
    if backend is not None:
        server, state = conn.execute(BACKEND_NOW, (backend.pid, backend.started)).fetchone() \
            or (None, None)
    found = conn.execute(LOOKUP_SQL, (check.clinic_id, check.token)).fetchone()
    if found is not None and found[0]:
        return Outcome.COMMITTED
    if backend is None or server != backend.server_started:
        log.warning("commit_outcome_server_restarted")
        return None
    if state is None or state == "idle":
        return Outcome.ABORTED
    conn.execute(TERMINATE, (backend.pid,))
    return _RETRY


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the URL was given with."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
