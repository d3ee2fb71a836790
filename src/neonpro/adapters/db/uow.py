"""The unit of work: one transaction, the repositories on it, commit once.

``with container.uow(clinic_id, actor) as tx: ...; tx.commit()``. Leaving the block
without ``commit()`` (or with an exception) rolls back. Repositories never commit.
"""

from __future__ import annotations

import contextvars
import uuid
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import psycopg
import structlog
from sqlalchemy import Connection, RootTransaction
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.db.database import (
    BACKEND,
    SET_CONTEXT,
    SET_CONTEXT_BOUNDED,
    CommitCheck,
    context_params,
    is_transient,
)
from neonpro.adapters.db.deadline import (
    CommitOutcomeUnknown,
    Deadline,
    Outcome,
    RequestTimedOut,
)
from neonpro.adapters.db.deadline import current as deadline_of_request
from neonpro.adapters.db.durability_sql import PRE_COMMIT, PRE_COMMIT_MARKED
from neonpro.adapters.db.errors import describe, mark_origin, translate
from neonpro.adapters.db.hot import HotStatement
from neonpro.adapters.db.models import SYSTEM_CLINIC_ID
from neonpro.adapters.db.repositories.appointment import SqlAppointmentRepository
from neonpro.adapters.db.repositories.audit import SqlAuditRepository
from neonpro.adapters.db.repositories.clinic import SqlClinicRepository
from neonpro.adapters.db.repositories.consent import SqlConsentRepository
from neonpro.adapters.db.repositories.disclosures import SqlDisclosureRepository
from neonpro.adapters.db.repositories.dsr import SqlDsrRepository
from neonpro.adapters.db.repositories.erasure import SqlErasureRepository
from neonpro.adapters.db.repositories.idempotency import SqlIdempotencyRepository, current_claim
from neonpro.adapters.db.repositories.incidents import SqlIncidentRepository
from neonpro.adapters.db.repositories.noshow import SqlNoShowRepository
from neonpro.adapters.db.repositories.patient import SqlPatientRepository
from neonpro.adapters.db.repositories.patient_import import SqlPatientLoader
from neonpro.adapters.db.repositories.professional import SqlProfessionalRepository
from neonpro.adapters.db.repositories.records import SqlPatientRecords
from neonpro.adapters.db.repositories.retention import SqlRetentionPolicyRepository
from neonpro.adapters.db.repositories.service_type import SqlServiceTypeRepository
from neonpro.adapters.db.repositories.signin import SqlStaffLoginRepository
from neonpro.adapters.db.repositories.trail import SqlAuditReports, SqlAuditTrail
from neonpro.adapters.db.watchdog import CommitWatchdog
from neonpro.domain.errors import (
    ConsentRequired,
    DomainError,
    Forbidden,
    IdempotencyKeyTaken,
    Unauthenticated,
)
from neonpro.domain.vocabulary import AuditAction, AuditStatus, RiskLevel

if TYPE_CHECKING:
    from neonpro.adapters.crypto import BlindIndexer, FieldCipher
    from neonpro.adapters.db.database import Database
    from neonpro.domain.actors import Actor

log = structlog.get_logger(__name__)

# what every transaction starts and ends with: compiled once, run on the driver (hot.py)
_SET_CONTEXT = HotStatement(SET_CONTEXT)
_SET_CONTEXT_BOUNDED = HotStatement(SET_CONTEXT_BOUNDED)
_PRE_COMMIT = HotStatement(PRE_COMMIT)
_PRE_COMMIT_MARKED = HotStatement(PRE_COMMIT_MARKED)


class SqlUnitOfWork:
    """A tenant (``clinic_id`` set, application role) or service (cross-clinic) transaction."""

    def __init__(
        self,
        db: Database,
        cipher: FieldCipher,
        blind: BlindIndexer,
        actor: Actor,
        clinic_id: uuid.UUID | None,
        *,
        service: bool = False,
        role: str | None = None,
        records_refusals: bool = True,
    ) -> None:
        if clinic_id is None and not service and role is None:
            msg = "a tenant unit of work needs a clinic id"
            raise ValueError(msg)
        self.db = db
        self.cipher = cipher
        self.blind = blind
        self.actor = actor
        self.clinic_id = clinic_id
        self.service = service
        self._role = role
        self._records_refusals = records_refusals
        self._connection: Connection | None = None
        self._transaction: RootTransaction | None = None
        self._committed = False

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> Self:
        # each role has its own login (and pool): the legal-hold role is not reached by
        # SET ROLE from another login, it is connected to
        kind = ("service" if self.service
                else "legal_hold" if self._role == self.db.roles.legal_hold else "app")
        deadline = deadline_of_request.get()
        if deadline is not None and deadline.expired:
            raise RequestTimedOut  # answered already: start no new work for it
        actor = self.actor
        params = context_params(
            self.clinic_id, actor.id, actor.role, request_id=actor.request_id,
            ip=actor.ip_address, user_agent=actor.user_agent, session_id=actor.session_id,
        )
        statement = _SET_CONTEXT
        if deadline is not None:  # no statement outlives the request
            configured = self.db.settings.pool_setting("statement_timeout_ms")
            left = max(1, int(deadline.remaining() * 1000))
            statement = _SET_CONTEXT_BOUNDED
            params = {**params, "statement_timeout": str(min(configured, left))}

        def begin(conn: Connection) -> RootTransaction:
            transaction = conn.begin()
            statement.run(conn, params)
            return transaction

        try:
            conn, self._transaction = self.db.checked_out(kind, begin)
        except DBAPIError as exc:
            if isinstance(exc.orig, psycopg.errors.InvalidAuthorizationSpecification):
                # the token's session: signed out, expired, revoked (neonpro_bind_context)
                raise Unauthenticated("invalid or expired token") from None
            raise
        self._connection = conn
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._connection
        self._connection = None
        if conn is None:
            return
        try:
            if (not self._committed and self._transaction is not None
                    and self._transaction.is_active):
                self._transaction.rollback()
        finally:
            conn.close()
        if isinstance(exc, Forbidden | ConsentRequired) and self._records_refusals:
            self._record_denial(exc)

    def _record_denial(self, exc: DomainError) -> None:
        """A refused operation is a security event; its own transaction, since the refused
        one rolled back."""
        record_refusal(self.db, self.cipher, self.blind, self.actor, self.clinic_id, exc)

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            msg = "the unit of work is not open (use it in a with block)"
            raise RuntimeError(msg)
        return self._connection

    def commit(self) -> None:
        """Commit the transaction; a unit of work commits at most once."""
        if self._committed:
            msg = "this unit of work has already committed"
            raise RuntimeError(msg)
        if self._transaction is None:
            msg = "the unit of work is not open"
            raise RuntimeError(msg)
        deadline = deadline_of_request.get()
        if deadline is not None and not deadline.begin_commit():
            self._transaction.rollback()  # the client was told 503: keep nothing
            raise RequestTimedOut
        try:
            self._commit()
        finally:
            if deadline is not None:
                deadline.end_commit()
        self._committed = True

    def _commit(self) -> None:
        """COMMIT. A transaction that wrote something first inserts a random token, in the
        same round trip that asks whether it wrote anything; if the connection then breaks
        during COMMIT, the token, looked up on another connection, says whether it committed
        (a lost acknowledgement is not a rollback, and a transaction id cannot say: the
        server reuses the id of a transaction whose commit record a crash discarded)."""
        transaction = self._transaction
        assert transaction is not None  # noqa: S101  (checked by commit)
        deadline = deadline_of_request.get()
        claim = current_claim.get()
        if claim is None and deadline is not None and deadline.retried:
            self._commit_read(transaction)  # retried whole if its connection breaks
            return
        check = CommitCheck(self.clinic_id or SYSTEM_CLINIC_ID, uuid.uuid4(),
                            self.connection.info.get(BACKEND))
        params: dict[str, object] = {"clinic": check.clinic_id, "token": check.token}
        statement = _PRE_COMMIT
        if claim is not None:  # the key's work is marked committed by this very transaction
            params.update(key_clinic=claim.clinic_id, key_hash=claim.key_hash,
                          claim=claim.claim)
            statement = _PRE_COMMIT_MARKED
        wrote = False
        try:
            wrote = statement.run(self.connection, params) > 0
            if claim is not None and not wrote:
                raise IdempotencyKeyTaken
            self._bounded_commit(transaction, deadline)
        except DBAPIError as exc:
            error = self._translate_at_commit(exc)
            if error is not None:
                raise error from None
            if not wrote or not is_transient(exc):
                raise  # nothing was written, or the database refused the commit itself
            budget = max(deadline.remaining(), 1.0) if deadline is not None else 30.0
            outcome = self.db.commit_outcome(check, budget)
            if outcome is Outcome.COMMITTED:
                log.warning("commit_acknowledgement_lost", outcome="committed")
                return
            if outcome is None:
                raise CommitOutcomeUnknown from exc
            raise

    def _bounded_commit(self, transaction: RootTransaction, deadline: Deadline | None) -> None:
        """COMMIT, cut at the request's deadline if it is still waiting then (see
        :class:`CommitWatchdog`); the answer at the deadline is the middleware's."""
        if deadline is None:
            transaction.commit()
            return
        connection = self.connection
        watchdog = CommitWatchdog(connection.connection.dbapi_connection, deadline.remaining())
        cut = False
        try:
            transaction.commit()
        finally:
            cut = watchdog.stop()
            if cut:
                log.warning("commit_cut_at_deadline")
                connection.invalidate()
        if cut:
            # the COMMIT returned because it was cancelled at the deadline: a cancelled wait
            # for a synchronous standby has committed locally but not replicated, so the
            # durability the server was configured for was not reached: never a 2xx (it
            # raced the deadline's 503 before); the Idempotency-Key answers what happened
            raise CommitOutcomeUnknown

    def _commit_read(self, transaction: RootTransaction) -> None:
        try:
            self._bounded_commit(transaction, deadline_of_request.get())
        except DBAPIError as exc:
            error = self._translate_at_commit(exc)
            if error is not None:
                raise error from None
            raise

    def _translate_at_commit(self, exc: DBAPIError) -> DomainError | None:
        """A constraint checked at COMMIT (deferred, or a constraint trigger): logged like a
        repository's, with the commit as its origin."""
        mark_origin(exc, "SqlUnitOfWork.commit")
        error = translate(exc)
        if error is not None:
            log.warning("db_error", error=error.code, **describe(exc),
                        clinic_id=str(self.clinic_id) if self.clinic_id else None,
                        actor_id=str(self.actor.id), request_id=self.actor.request_id)
        return error

    def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()

    # ---------------------------------------------------------- repositories
    @cached_property
    def audit(self) -> SqlAuditRepository:
        return SqlAuditRepository(self)

    @cached_property
    def clinics(self) -> SqlClinicRepository:
        return SqlClinicRepository(self)

    @cached_property
    def logins(self) -> SqlStaffLoginRepository:
        return SqlStaffLoginRepository(self)

    @cached_property
    def patients(self) -> SqlPatientRepository:
        return SqlPatientRepository(self)

    @cached_property
    def professionals(self) -> SqlProfessionalRepository:
        return SqlProfessionalRepository(self)

    @cached_property
    def service_types(self) -> SqlServiceTypeRepository:
        return SqlServiceTypeRepository(self)

    @cached_property
    def appointments(self) -> SqlAppointmentRepository:
        return SqlAppointmentRepository(self)

    @cached_property
    def consents(self) -> SqlConsentRepository:
        return SqlConsentRepository(self)

    @cached_property
    def idempotency(self) -> SqlIdempotencyRepository:
        return SqlIdempotencyRepository(self)

    @cached_property
    def incidents(self) -> SqlIncidentRepository:
        return SqlIncidentRepository(self)

    @cached_property
    def subject_requests(self) -> SqlDsrRepository:
        return SqlDsrRepository(self)

    @cached_property
    def disclosures(self) -> SqlDisclosureRepository:
        return SqlDisclosureRepository(self)

    @cached_property
    def trail(self) -> SqlAuditTrail:
        return SqlAuditTrail(self)

    @cached_property
    def records(self) -> SqlPatientRecords:
        return SqlPatientRecords(self)

    @cached_property
    def no_show(self) -> SqlNoShowRepository:
        return SqlNoShowRepository(self)

    @cached_property
    def patient_import(self) -> SqlPatientLoader:
        return SqlPatientLoader(self)

    @cached_property
    def audit_reports(self) -> SqlAuditReports:
        return SqlAuditReports(self)

    @cached_property
    def erasures(self) -> SqlErasureRepository:
        return SqlErasureRepository(self)

    @cached_property
    def retention_policies(self) -> SqlRetentionPolicyRepository:
        return SqlRetentionPolicyRepository(self)


def record_refusal(
    db: Database,
    cipher: FieldCipher,
    blind: BlindIndexer,
    actor: Actor,
    clinic_id: uuid.UUID | None,
    exc: DomainError,
    *,
    resource_type: str | None = None,
    resource_id: uuid.UUID | str | None = None,
    patient_id: uuid.UUID | None = None,
    risk: RiskLevel = RiskLevel.MEDIUM,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a refusal (``Forbidden``: a role check, row-level security; ``ConsentRequired``:
    the consent gate) as a ``PERMISSION_DENIED`` event, status ``blocked``, and mark ``exc``
    audited. The one way refusals are recorded: by a unit of work that ends in one, and by
    the API's role checks, which refuse before any unit of work opens.

    Durable whatever becomes of the refused work: the event is written and committed in a
    transaction of its own (the refused one rolls back), by the service login in the refused
    transaction's clinic (its chain gets the event), as the refused actor. It is no part of
    the request's work: outside the request's Idempotency-Key claim (its commit must not mark
    the key's work done) and under a deadline of its own (it is written even when the request
    is being answered 503). ``details`` name the operation, never a value of personal data:
    ``error`` is the refusal's code; a patient is referred to by ``patient_id`` (stored as
    the keyed ``patient_ref``).
    """
    context = contextvars.copy_context()
    context.run(current_claim.set, None)
    context.run(deadline_of_request.set, Deadline(db.settings.request_timeout_s))
    denial = SqlUnitOfWork(db, cipher, blind, actor, clinic_id, service=True,
                           records_refusals=False)
    context.run(_write_refusal, denial, resource_type, resource_id, patient_id, risk,
                {**(details or {}), "error": exc.code})
    exc.audited = True


def _write_refusal(denial: SqlUnitOfWork, resource_type: str | None,
                   resource_id: uuid.UUID | str | None, patient_id: uuid.UUID | None,
                   risk: RiskLevel, details: dict[str, Any]) -> None:
    with denial:
        denial.audit.record(AuditAction.PERMISSION_DENIED, resource_type, resource_id,
                            patient_id=patient_id, status=AuditStatus.BLOCKED, risk=risk,
                            details=details)
        denial.commit()
