"""Sign-in, password change and member removal over the in-memory unit of work: one answer
for every failed sign-in (the reason in the audit trail only), throttling before any
password check, sessions ended, the clinic's last admin kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.errors import (
    ClinicNotChosen,
    Conflict,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
    ValidationFailed,
)
from neonpro.domain.ports_auth import IssuedToken
from neonpro.domain.signin import ThrottleLimits
from neonpro.domain.vocabulary import AuditAction, AuditStatus, ClinicRole
from neonpro.services import auth
from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes_auth import FakePasswords
from tests.unit.fakes_catalog import FakeClinics

CLINIC = uuid.uuid4()
OTHER = uuid.uuid4()
EMAIL = "pessoa@clinica.example"
PASSWORD = "a long enough secret"
ANONYMOUS = Actor(uuid.UUID(int=0), "anonymous")
LIMITS = ThrottleLimits(pair=3, account=10, address=20, window=timedelta(minutes=15),
                        first_block=timedelta(minutes=5), longest_block=timedelta(days=1),
                        trust_for=timedelta(days=30))


class World:
    def __init__(self) -> None:
        self.store: dict[str, Any] = {}
        self.opened: list[FakeUnitOfWork] = []
        self.passwords = FakePasswords()

    def open(self) -> FakeUnitOfWork:
        tx = FakeUnitOfWork(ANONYMOUS, None, store=self.store)
        self.opened.append(tx)
        return tx

    def admin(self, actor: Actor, clinic: uuid.UUID = CLINIC) -> FakeUnitOfWork:
        tx = FakeUnitOfWork(actor, clinic, store=self.store, service=True)
        self.opened.append(tx)
        return tx

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for tx in self.opened for e in tx.audit.events]

    @property
    def logins(self) -> Any:
        return FakeUnitOfWork(ANONYMOUS, None, store=self.store).logins

    def account(self, role: ClinicRole = ClinicRole.ADMIN, **kwargs: Any) -> uuid.UUID:
        members = kwargs.pop("memberships", {CLINIC: role})
        return self.logins.seed(EMAIL, self.passwords.hash(PASSWORD), memberships=members,
                                **kwargs)

    def login(self, password: str = PASSWORD, clinic: uuid.UUID | None = None) -> IssuedToken:
        return auth.login(self.open, EMAIL, password, clinic, "192.0.2.1", limits=LIMITS,
                          mint=_mint, passwords=self.passwords)


def _mint(user_id: uuid.UUID, clinic_id: uuid.UUID, role: ClinicRole) -> IssuedToken:
    return IssuedToken(f"token-{uuid.uuid4()}", str(uuid.uuid4()), user_id, clinic_id, role,
                       datetime.now(UTC) + timedelta(hours=1))


@pytest.fixture
def world() -> World:
    return World()


def test_a_right_password_issues_a_token_with_its_session(world: World) -> None:
    user = world.account()
    issued = world.login()
    assert (issued.user_id, issued.clinic_id, issued.role) == (user, CLINIC, ClinicRole.ADMIN)
    session = world.store["sessions"][issued.token_id]
    assert (session["kind"], session["revoked"]) == ("login", None)
    assert world.events[-1]["action"] == AuditAction.LOGIN
    assert world.events[-1]["clinic_id"] == CLINIC  # the clinic's chain records it


@pytest.mark.parametrize(("setup", "reason"), [
    ("wrong", "bad_credentials"), ("unknown", "bad_credentials"),
    ("inactive", "inactive"), ("elsewhere", "no_membership"),
])
def test_every_failure_is_the_same_answer_after_a_password_check(
        world: World, setup: str, reason: str) -> None:
    if setup == "inactive":
        world.account(is_active=False)
    elif setup == "elsewhere":
        world.account(memberships={OTHER: ClinicRole.ADMIN, uuid.uuid4(): ClinicRole.DPO})
    elif setup == "wrong":
        world.account(memberships={CLINIC: ClinicRole.ADMIN, OTHER: ClinicRole.DPO})
    with pytest.raises(Unauthenticated) as caught:
        world.login("wrong password" if setup == "wrong" else PASSWORD,
                    CLINIC if setup == "elsewhere" else None)
    assert caught.value.message == auth.FAILED
    assert not isinstance(caught.value, ClinicNotChosen)  # a stranger learns no clinic
    assert world.passwords.checks == 1  # argon2's work even without an account
    failed = world.events[-1]
    assert (failed["action"], failed["status"]) == (AuditAction.LOGIN_FAILED,
                                                    AuditStatus.FAILURE)
    assert failed["details"] == {"reason": reason}
    assert world.store.get("sessions", {}) == {}


def test_the_right_password_of_an_account_of_several_clinics_asks_which(world: World) -> None:
    """Only whoever gave the right password learns the account's clinics (for the
    console's picker); no session is opened until one is named."""
    clinics = FakeClinics(world.open())
    for clinic, name in ((CLINIC, "Zeta Estética"), (OTHER, "Alfa Saúde")):
        clinics.seed(clinic)
        clinics.rows[clinic] = clinics.rows[clinic].model_copy(update={"name": name})
    world.account(memberships={CLINIC: ClinicRole.ADMIN, OTHER: ClinicRole.DPO})
    with pytest.raises(ClinicNotChosen) as caught:
        world.login()
    assert caught.value.message == auth.FAILED  # the API's 401 is the same
    assert caught.value.clinics == [(OTHER, "Alfa Saúde", "dpo"),
                                    (CLINIC, "Zeta Estética", "admin")]
    assert world.events[-1]["details"] == {"reason": "clinic_not_chosen"}
    assert world.store.get("sessions", {}) == {}
    for _ in range(LIMITS.pair + 1):  # not guesses: never throttled
        with pytest.raises(ClinicNotChosen):
            world.login()
    assert world.login(clinic=OTHER).role == ClinicRole.DPO


def test_throttling_answers_before_any_password_is_checked(world: World) -> None:
    world.account()
    for _ in range(LIMITS.pair):
        with pytest.raises(Unauthenticated):
            world.login("wrong password")
    checks = world.passwords.checks
    with pytest.raises(TooManyAttempts) as caught:
        world.login()  # the right password, but too late
    assert 0 < caught.value.retry_after_s <= 300
    assert world.passwords.checks == checks
    blocked = world.events[-1]
    assert (blocked["status"], blocked["details"]) == (AuditStatus.BLOCKED,
                                                       {"reason": "throttled"})


def test_a_password_change_ends_every_session_and_issues_a_new_one(world: World) -> None:
    user = world.account()
    old = world.login()
    actor = Actor(user, "admin", session_id=old.token_id)
    new_password = "another long enough secret"
    issued = auth.change_password(world.open, world.admin(actor), PASSWORD, new_password,
                                  "192.0.2.1", limits=LIMITS, mint=_mint,
                                  passwords=world.passwords)
    sessions = world.store["sessions"]
    assert sessions[old.token_id]["revoked"] == "password_changed"
    assert sessions[issued.token_id]["revoked"] is None
    assert world.store["accounts"][user]["password_hash"] == world.passwords.hash(new_password)
    assert world.events[-1]["details"] == {"fields": ["password"], "sessions_ended": 1}


@pytest.mark.parametrize(("current", "new", "field"), [
    (PASSWORD, "short", "new_password"),
    (PASSWORD, PASSWORD, "new_password"),
    ("not the password", "another long enough secret", "current_password"),
])
def test_a_password_change_is_refused_without_its_conditions(
        world: World, current: str, new: str, field: str) -> None:
    user = world.account()
    old = world.login()
    with pytest.raises(ValidationFailed) as caught:
        auth.change_password(world.open, world.admin(Actor(user, "admin")), current, new,
                             None, limits=LIMITS, mint=_mint, passwords=world.passwords)
    assert caught.value.field == field
    assert world.store["sessions"][old.token_id]["revoked"] is None
    assert world.store["accounts"][user]["password_hash"] == world.passwords.hash(PASSWORD)


def test_the_last_active_admin_stays_and_a_member_removed_is_signed_out(
        world: World) -> None:
    admin = world.account()
    desk = world.logins.seed("desk@clinica.example", "x",
                             memberships={CLINIC: ClinicRole.RECEPTIONIST})
    world.store["sessions"]["desk-token"] = {"user_id": desk, "clinic_id": CLINIC,
                                             "revoked": None}
    actor = Actor(admin, "admin")
    with pytest.raises(Conflict):
        auth.remove_member(world.admin(actor), admin)
    with pytest.raises(NotFound):
        auth.remove_member(world.admin(actor), uuid.uuid4())
    auth.remove_member(world.admin(actor), desk)
    assert world.store["sessions"]["desk-token"]["revoked"] == "membership_removed"
    assert not world.store["memberships"][(CLINIC, desk)].is_active
    assert world.events[-1]["details"] == {"fields": ["is_active"], "sessions_ended": 1}
