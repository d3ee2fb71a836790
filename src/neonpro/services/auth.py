"""Staff sign-in, sessions and passwords (docs/security.md).

* Every failed sign-in gets the same 401, whatever failed (no such e-mail, no password, a
  wrong one, an inactive account, no membership in the clinic), after the same argon2 work.
  The one refusal that says more is said only to whoever gave the right password of an
  active account: it belongs to several clinics and none was named (``ClinicNotChosen``,
  with their names, so the console's sign-in can offer them; the API's 401 is the same).
* Throttling (domain/signin.py) answers 429 *before* any password is checked: the same for
  an e-mail nobody has, so it tells nothing about the account or the password. A pair
  (address, e-mail) that signed in before is held back only by its own attempts.
* Every token issued has a session row, checked on every transaction the token opens:
  signing out, a password change, a membership removed or changed end it on the next
  request.
* Every attempt is an audit event (LOGIN, or LOGIN_FAILED with the reason), committed before
  the caller is answered.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from neonpro.domain.errors import (
    ClinicNotChosen,
    Conflict,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
    ValidationFailed,
)
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.ports_auth import IssuedToken, Mint, Passwords
from neonpro.domain.schemas.clinic import MembershipRead, StaffUserCreate, StaffUserRead
from neonpro.domain.signin import ThrottleKeys, ThrottleLimits
from neonpro.domain.vocabulary import (
    AuditAction,
    AuditResource,
    AuditStatus,
    ClinicRole,
    RiskLevel,
)
from neonpro.services import clinics

Opener = Callable[[], UnitOfWork]
MIN_PASSWORD = 12
FAILED = "wrong e-mail, password or clinic"


@dataclass(frozen=True)
class _Claim:
    keys: ThrottleKeys
    wait_until: datetime | None
    user_id: uuid.UUID | None
    password_hash: str | None
    is_active: bool
    memberships: dict[uuid.UUID, ClinicRole]


def _claim(open_uow: Opener, address: str | None, email: str, limits: ThrottleLimits,
           now: datetime, clinic_id: uuid.UUID | None) -> _Claim:
    """Count the attempt (its own short transaction: no lock is held while argon2 runs)
    and read the account; a throttled attempt is audited here and refused."""
    with open_uow() as tx:
        keys = tx.logins.keys(address, email)
        wait = tx.logins.claim_attempt(keys, limits, now)
        record = tx.logins.find_login(email)
        members = record.memberships if record else {}
        if wait is not None:
            tx.clinic_id = _chain(members, clinic_id)
            tx.audit.record(AuditAction.LOGIN_FAILED, AuditResource.STAFF_USER,
                            record.user_id if record else None, status=AuditStatus.BLOCKED,
                            risk=RiskLevel.HIGH, details={"reason": "throttled"})
        tx.commit()
    return _Claim(keys, wait, record.user_id if record else None,
                  record.password_hash if record else None,
                  bool(record and record.is_active), members)


def _chain(members: dict[uuid.UUID, ClinicRole], clinic_id: uuid.UUID | None) -> uuid.UUID | None:
    """The clinic whose audit chain records the attempt (the system chain if none)."""
    clinic = clinic_id
    if clinic is None and len(members) == 1:
        clinic = next(iter(members))
    return clinic if clinic in members else None


def _refuse_throttled(wait_until: datetime, now: datetime) -> TooManyAttempts:
    return TooManyAttempts(math.ceil((wait_until - now).total_seconds()))


def login(open_uow: Opener, email: str, password: str, clinic_id: uuid.UUID | None,
          address: str | None, *, limits: ThrottleLimits, mint: Mint,
          passwords: Passwords) -> IssuedToken:
    """Check the password and issue a token (with its session) for the membership."""
    now = datetime.now(UTC)
    claim = _claim(open_uow, address, email, limits, now, clinic_id)
    if claim.wait_until is not None:
        raise _refuse_throttled(claim.wait_until, now)
    ok = passwords.verify(claim.password_hash, password)  # argon2 even without an account
    clinic = _chain(claim.memberships, clinic_id)
    reason = ("bad_credentials" if claim.user_id is None or not ok
              else "inactive" if not claim.is_active
              else "clinic_not_chosen" if clinic_id is None and len(claim.memberships) > 1
              else "no_membership" if clinic is None else None)
    issued: IssuedToken | None = None
    choices: list[tuple[uuid.UUID, str, str]] = []
    with open_uow() as tx:
        tx.clinic_id = clinic if claim.user_id else None
        if reason is None and claim.user_id is not None and clinic is not None:
            tx.logins.attempt_succeeded(claim.keys, now, limits)
            tx.logins.login_succeeded(claim.user_id, now)
            issued = mint(claim.user_id, clinic, claim.memberships[clinic])
            tx.logins.open_session(issued.token_id, issued.user_id, issued.clinic_id,
                                   issued.role, "login", issued.expires_at)
            tx.audit.record(AuditAction.LOGIN, AuditResource.STAFF_USER, claim.user_id,
                            details={"token": issued.token_id})
        else:
            # one answer for every failure; the reason is in the audit trail only
            chooses = reason == "clinic_not_chosen"
            if chooses:  # the password was right: the attempt is not a guess
                tx.logins.attempt_succeeded(claim.keys, now, limits)
            tx.audit.record(AuditAction.LOGIN_FAILED, AuditResource.STAFF_USER, claim.user_id,
                            status=AuditStatus.FAILURE,
                            risk=RiskLevel.LOW if chooses else RiskLevel.MEDIUM,
                            details={"reason": reason or "bad_credentials"})
            if chooses:
                choices = sorted(((c, tx.clinics.get(c).name, role.value)
                                  for c, role in claim.memberships.items()),
                                 key=lambda choice: (choice[1], str(choice[0])))
        tx.commit()
    if choices:
        raise ClinicNotChosen(FAILED, choices)
    if issued is None:
        raise Unauthenticated(FAILED)
    return issued


def open_development_session(service_uow: UnitOfWork, issued: IssuedToken) -> IssuedToken:
    """Record the session of a development token (``neonpro token``, the demo's token):
    it names no account, so no membership is checked, and production refuses to issue one."""
    with service_uow as tx:
        tx.logins.open_session(issued.token_id, issued.user_id, issued.clinic_id, issued.role,
                               "development", issued.expires_at)
        tx.commit()
    return issued


def logout(admin_uow: UnitOfWork, token_id: str) -> None:
    """End the caller's session: the token is refused from the next request on."""
    with admin_uow as tx:
        tx.logins.revoke_sessions("logout", token_id=token_id, user_id=tx.actor.id)
        tx.audit.record(AuditAction.LOGOUT, AuditResource.STAFF_USER, tx.actor.id,
                        details={"token": token_id})
        tx.commit()


def change_password(open_uow: Opener, admin_uow: UnitOfWork, current: str, new: str,
                    address: str | None, *, limits: ThrottleLimits, mint: Mint,
                    passwords: Passwords) -> IssuedToken:
    """Change the caller's password (the current one required, throttled like a sign-in);
    every session of the account ends, and a new token for this one is returned."""
    actor, clinic = admin_uow.actor, admin_uow.clinic_id
    check_new_password(new, "new_password")
    if new == current:
        raise ValidationFailed("new_password", "must differ from the current password")
    with open_uow() as tx:
        email = tx.logins.email_of(actor.id)
        tx.commit()
    if email is None or clinic is None:
        raise Unauthenticated("invalid or expired token")
    now = datetime.now(UTC)
    claim = _claim(open_uow, address, email, limits, now, clinic)
    if claim.wait_until is not None:
        raise _refuse_throttled(claim.wait_until, now)
    if not passwords.verify(claim.password_hash, current):
        with admin_uow as tx:
            tx.audit.record(AuditAction.LOGIN_FAILED, AuditResource.STAFF_USER, actor.id,
                            status=AuditStatus.FAILURE, risk=RiskLevel.MEDIUM,
                            details={"reason": "bad_credentials", "operation": "password"})
            tx.commit()
        raise ValidationFailed("current_password", "is not the account's password")
    with admin_uow as tx:
        tx.logins.attempt_succeeded(claim.keys, now, limits)
        tx.logins.set_password(actor.id, passwords.hash(new))
        ended = tx.logins.revoke_sessions("password_changed", user_id=actor.id)
        issued = mint(actor.id, clinic, claim.memberships[clinic])
        tx.logins.open_session(issued.token_id, actor.id, clinic, issued.role, "login",
                               issued.expires_at)
        tx.audit.record(AuditAction.UPDATE, AuditResource.STAFF_USER, actor.id, risk=RiskLevel.HIGH,
                        details={"fields": ["password"], "sessions_ended": ended})
        tx.commit()
    return issued


def check_new_password(password: str, field: str = "password") -> None:
    """The rule of a new password, wherever one is set (a change, a new account)."""
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(field, f"at least {MIN_PASSWORD} characters")


def add_account(service_uow: UnitOfWork, clinic_id: uuid.UUID, email: str, display_name: str,
                password: str, role: ClinicRole, *,
                passwords: Passwords) -> tuple[StaffUserRead, MembershipRead]:
    """A staff account that signs in with ``password`` (POST /auth/login), member of
    ``clinic_id`` in ``role``. The row-change triggers audit the account and the
    membership, as for any staff change; the password is hashed here and never kept,
    logged or audited. A bad e-mail or name is ``ValidationFailed`` naming the field, a
    taken e-mail ``Conflict``: neither repeats the value."""
    check_new_password(password)
    try:
        account = StaffUserCreate(email=email, display_name=display_name,
                                  password_hash=passwords.hash(password))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "account"
        raise ValidationFailed(field, str(first["msg"])) from None
    return clinics.add_staff_member(service_uow, clinic_id, account, role)


def members(admin_uow: UnitOfWork) -> list[MembershipRead]:
    with admin_uow as tx:
        found = tx.clinics.members()
        tx.commit()
    return found


def remove_member(admin_uow: UnitOfWork, user_id: uuid.UUID) -> None:
    """Remove ``user_id`` from the clinic: the membership is deactivated (kept, for the
    audit trail's sake) and the user's sessions in this clinic end at once. The last
    active admin cannot be removed (409)."""
    with admin_uow as tx:
        current = {m.user_id: m for m in tx.clinics.members() if m.is_active}
        if user_id not in current:
            raise NotFound("staff member", user_id)
        admins = [u for u, m in current.items() if ClinicRole(m.role) is ClinicRole.ADMIN]
        if admins == [user_id]:
            raise Conflict("the clinic's last active admin cannot be removed")
        tx.logins.deactivate_membership(user_id)
        ended = tx.logins.revoke_sessions("membership_removed", user_id=user_id,
                                          clinic_id=tx.clinic_id)
        tx.audit.record(AuditAction.UPDATE, AuditResource.CLINIC_MEMBERSHIP, user_id,
                        risk=RiskLevel.HIGH,
                        details={"fields": ["is_active"], "sessions_ended": ended})
        tx.commit()
