"""Staff sign-in and sign-out: argon2 passwords, lockout after repeated failures, audited;
every failed sign-in gets the same answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from neonpro.adapters.auth import verify_password
from neonpro.adapters.db.uow import SqlUnitOfWork
from neonpro.domain.errors import Unauthenticated
from neonpro.domain.vocabulary import AuditAction, AuditStatus, ClinicRole, RiskLevel


@dataclass(frozen=True)
class SignedIn:
    user_id: uuid.UUID
    clinic_id: uuid.UUID
    role: ClinicRole


def login(service_uow: SqlUnitOfWork, email: str, password: str, clinic_id: uuid.UUID | None,
          *, max_failures: int, lockout: timedelta) -> SignedIn:
    """Check the password and return the membership to put in a token.

    Every attempt is an audit event (LOGIN, or LOGIN_FAILED with the reason); the failure
    is committed before the error is raised. The error never says whether the e-mail
    exists.
    """
    outcome: SignedIn | Exception
    with service_uow as tx:
        record = tx.logins.find_login(email)
        ok = verify_password(record.password_hash if record else None, password)
        clinic = clinic_id
        if record is not None and clinic is None and len(record.memberships) == 1:
            clinic = next(iter(record.memberships))
        tx.clinic_id = clinic if record and clinic in record.memberships else None
        now = datetime.now(UTC)
        reason = None
        if record is None or not ok:
            reason = "bad_credentials"
        elif not record.is_active:
            reason = "inactive"
        elif record.locked_until is not None and record.locked_until > now:
            reason = "locked"
        elif clinic is None or clinic not in record.memberships:
            reason = "no_membership"
        if reason is None and record is not None and clinic is not None:
            tx.logins.login_succeeded(record.user_id)
            tx.audit.record(AuditAction.LOGIN, "staff_user", record.user_id)
            outcome = SignedIn(record.user_id, clinic, record.memberships[clinic])
        else:
            locked_now = None
            if record is not None and reason == "bad_credentials":
                locked_now = tx.logins.login_failed(record.user_id, max_failures, lockout)
            risk = RiskLevel.HIGH if locked_now or reason == "locked" else RiskLevel.MEDIUM
            tx.audit.record(AuditAction.LOGIN_FAILED, "staff_user",
                            record.user_id if record else None, status=AuditStatus.FAILURE,
                            risk=risk, details={"reason": reason, "locked": bool(locked_now)})
            # one answer for every failure: a locked account (with the right password or
            # a wrong one), an unknown e-mail, a wrong password; the reason is in the audit
            # trail, never in the answer (a 423 told a guesser the lock, then the password)
            outcome = Unauthenticated("wrong e-mail, password or clinic")
        tx.commit()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def logout(uow: SqlUnitOfWork, token_id: str) -> None:
    with uow:
        uow.audit.record(AuditAction.LOGOUT, "staff_user", uow.actor.id,
                         details={"token": token_id})
        uow.commit()
