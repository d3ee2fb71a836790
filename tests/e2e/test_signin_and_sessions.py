"""Sign-in and sessions against their adversaries (docs/security.md):

* a holder of a token that was signed out, whose password changed, whose membership was
  removed or changed: refused on the next request, by every operation;
* a stranger guessing passwords: throttled before any password is checked, the same for an
  e-mail nobody has, a burst of parallel guesses included, and unable to keep the real user
  (signing in from where they signed in before) out;
* someone running SQL as the application role: cannot read, revive or forge a session.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.auth import TokenCodec, hash_password
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.errors import TooManyAttempts, Unauthenticated
from neonpro.domain.schemas.clinic import ClinicCreate, StaffUserCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.entrypoints.api.app import create_app
from neonpro.services import auth, clinics
from tests.e2e.api_helpers import headers, is_problem
from tests.sessions import tenant_session

SYSTEM = SystemActors.CLI
PASSWORD = "correct horse battery"
# operations a token plays no part in
PUBLIC = {("post", "/auth/login"), ("get", "/health/live"), ("get", "/health/ready"),
          ("get", "/health/details"), ("get", "/metrics")}


def _client(box: Container, address: str) -> TestClient:
    return TestClient(create_app(box), raise_server_exceptions=False, client=(address, 40000))


@pytest.fixture(scope="module")
def clinic(box: Container) -> uuid.UUID:
    return clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Sessões")).id


@pytest.fixture(scope="module")
def app_client(box: Container) -> Iterator[TestClient]:
    with _client(box, "198.51.100.1") as test_client:
        yield test_client


def _staff(box: Container, clinic: uuid.UUID, role: ClinicRole = ClinicRole.RECEPTIONIST,
           password: str = PASSWORD) -> tuple[str, uuid.UUID]:
    email = f"s{uuid.uuid4().hex[:10]}@clinica.example"
    user, _ = clinics.add_staff_member(box.service_uow(SYSTEM), clinic, StaffUserCreate(
        email=email, display_name="Pessoa", password_hash=hash_password(password)), role)
    return email, user.id


def _sign_in(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    answer = client.post("/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _operations(client: TestClient) -> list[tuple[str, str]]:
    spec = client.app.openapi()  # type: ignore[attr-defined]
    return sorted((method, path) for path, ops in spec["paths"].items() for method in ops
                  if (method, path) not in PUBLIC)


def _call(client: TestClient, method: str, path: str, who: dict[str, str]) -> int:
    concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
    if path.endswith("/feed") or "stream" in path:
        with client.stream(method.upper(), concrete, headers=who) as answer:
            return answer.status_code
    return client.request(method.upper(), concrete, headers=who).status_code


def test_a_signed_out_token_is_refused_by_every_operation(
        box: Container, app_client: TestClient, clinic: uuid.UUID) -> None:
    """Not only where a transaction happens to open: every operation of the OpenAPI
    document answers 401 (a 403, 404 or 422 would mean the token still counted)."""
    token = headers(box, clinic, "admin")
    assert app_client.get("/clinic", headers=token).status_code == 200
    assert app_client.post("/auth/logout", headers=token).status_code == 204
    operations = _operations(app_client)
    assert len(operations) > 40
    answered = {(m, p): _call(app_client, m, p, token) for m, p in operations}
    assert {op: s for op, s in answered.items() if s != 401} == {}


def test_a_password_change_ends_every_session_of_the_account(
        box: Container, app_client: TestClient, clinic: uuid.UUID) -> None:
    other = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Outra")).id
    email, user = _staff(box, clinic)
    with box.service_uow(SYSTEM) as tx:  # the same account is a member of a second clinic
        tx.clinics.add_membership(other, user, ClinicRole.PROFESSIONAL)
        tx.commit()
    first = _sign_in_to(app_client, email, clinic)
    second = _sign_in_to(app_client, email, clinic)
    elsewhere = _sign_in_to(app_client, email, other)
    wrong = app_client.post("/auth/password", headers=first, json={
        "current_password": "not it at all", "new_password": "a brand new passphrase"})
    is_problem(wrong, 422, "validation_failed")
    assert app_client.get("/clinic", headers=first).status_code == 200  # nothing changed
    short = app_client.post("/auth/password", headers=first, json={
        "current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422
    assert "short" not in short.text  # never echoed
    assert PASSWORD not in short.text
    changed = app_client.post("/auth/password", headers=first, json={
        "current_password": PASSWORD, "new_password": "a brand new passphrase"})
    assert changed.status_code == 200, changed.text
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert app_client.get("/clinic", headers=fresh).status_code == 200
    for old in (first, second, elsewhere):
        is_problem(app_client.get("/clinic", headers=old), 401, "unauthenticated")
    is_problem(app_client.post("/auth/login", json={"email": email, "password": PASSWORD}),
               401, "unauthenticated")
    _sign_in_to(app_client, email, clinic, "a brand new passphrase")


def _sign_in_to(client: TestClient, email: str, clinic: uuid.UUID,
                password: str = PASSWORD) -> dict[str, str]:
    answer = client.post("/auth/login", json={"email": email, "password": password,
                                              "clinic_id": str(clinic)})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_a_removed_or_changed_membership_ends_its_sessions(
        box: Container, app_client: TestClient, clinic: uuid.UUID) -> None:
    admin_email, admin_id = _staff(box, clinic, ClinicRole.ADMIN)
    desk_email, desk_id = _staff(box, clinic)
    doc_email, doc_id = _staff(box, clinic, ClinicRole.PROFESSIONAL)
    admin, desk, doc = (_sign_in(app_client, e) for e in (admin_email, desk_email, doc_email))
    # a lower role cannot remove anyone
    is_problem(app_client.delete(f"/staff/{admin_id}", headers=desk), 403, "forbidden")
    listed = app_client.get("/staff", headers=admin)
    assert {m["user_id"] for m in listed.json()} >= {str(admin_id), str(desk_id)}
    assert app_client.delete(f"/staff/{desk_id}", headers=admin).status_code == 204
    is_problem(app_client.get("/clinic", headers=desk), 401, "unauthenticated")
    is_problem(app_client.post("/auth/login", json={"email": desk_email,
                                                    "password": PASSWORD}),
               401, "unauthenticated")  # no membership left: the same 401 as any failure
    is_problem(app_client.delete(f"/staff/{desk_id}", headers=admin), 404, "not_found")
    is_problem(app_client.delete(f"/staff/{uuid.uuid4()}", headers=admin), 404, "not_found")
    # the role changed behind the token's back (SQL by an operator): refused as well
    with box.service_uow(SYSTEM) as tx:
        tx.connection.execute(text(
            "UPDATE clinic_memberships SET role = 'receptionist' "
            "WHERE clinic_id = :c AND user_id = :u"), {"c": clinic, "u": doc_id})
        tx.commit()
    is_problem(app_client.get("/clinic", headers=doc), 401, "unauthenticated")
    assert app_client.get("/clinic", headers=admin).status_code == 200


def test_the_last_admin_cannot_be_removed(box: Container, app_client: TestClient) -> None:
    alone = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Só")).id
    email, admin_id = _staff(box, alone, ClinicRole.ADMIN)
    admin = _sign_in(app_client, email)
    is_problem(app_client.delete(f"/staff/{admin_id}", headers=admin), 409, "conflict")
    assert app_client.get("/clinic", headers=admin).status_code == 200


def test_throttling_never_tells_whether_an_account_exists_or_a_guess_was_right(
        box: Container, clinic: uuid.UUID) -> None:
    email, _ = _staff(box, clinic)
    nobody = f"ninguem{uuid.uuid4().hex[:8]}@clinica.example"
    limit = box.settings.login_max_failures
    with _client(box, "192.0.2.77") as stranger:
        answers = {}
        for target in (email, nobody):
            statuses = [stranger.post("/auth/login", json={"email": target,
                                                            "password": f"guess {i}"})
                        for i in range(limit + 1)]
            assert [s.status_code for s in statuses] == [401] * limit + [429]
            answers[target] = statuses[-1]
        right = stranger.post("/auth/login", json={"email": email, "password": PASSWORD})
        is_problem(right, 429, "too_many_attempts")
        assert right.json() == answers[email].json() == answers[nobody].json()
        # the time left of the same policy's block (the blocks began seconds apart)
        first_block = box.settings.login_lockout_minutes * 60
        for answer in (right, answers[nobody]):
            assert 0 < int(answer.headers["Retry-After"]) <= first_block
        assert email not in right.text
        assert nobody not in right.text


def test_a_burst_of_parallel_guesses_gets_no_more_than_the_limit(
        box: Container, clinic: uuid.UUID) -> None:
    email, _ = _staff(box, clinic)
    anonymous = Actor(uuid.UUID(int=0), "anonymous", ip_address="192.0.2.99")
    codec = TokenCodec(box.settings, box.keyring)

    def guess(i: int) -> str:
        try:
            auth.login(lambda: box.service_uow(anonymous), email, f"wrong {i}", None,
                       "192.0.2.99", limits=box.signin_limits, mint=codec.mint,
                       passwords=box.passwords)
        except Unauthenticated:
            return "checked"
        except TooManyAttempts:
            return "throttled"
        return "signed in"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(guess, range(24)))
    assert outcomes.count("checked") == box.settings.login_max_failures
    assert outcomes.count("throttled") == 24 - box.settings.login_max_failures


def test_a_stranger_cannot_keep_a_user_out(box: Container, clinic: uuid.UUID) -> None:
    """The account is throttled for addresses it never signed in from; the user's own
    address (where they signed in before) is held back by its own attempts only."""
    email, _ = _staff(box, clinic)
    with _client(box, "203.0.113.10") as home:
        _sign_in(home, email)  # the user, at the clinic, yesterday
        limits = box.signin_limits
        for n in range(limits.account // limits.pair + 1):  # a botnet, each address a while
            with _client(box, f"192.0.2.{120 + n}") as bot:
                for i in range(limits.pair + 1):
                    bot.post("/auth/login", json={"email": email, "password": f"g{n}.{i}"})
        with _client(box, "192.0.2.250") as newcomer:  # a new address: the account waits
            is_problem(newcomer.post("/auth/login", json={"email": email,
                                                          "password": PASSWORD}),
                       429, "too_many_attempts")
        _sign_in(home, email)  # the user, at the clinic, today: in
        with _client(box, "192.0.2.251") as another:  # and their success lifts no block
            is_problem(another.post("/auth/login", json={"email": email,
                                                         "password": PASSWORD}),
                       429, "too_many_attempts")


def test_signing_in_to_ones_own_account_between_guesses_does_not_reset_the_address(
        box: Container, clinic: uuid.UUID) -> None:
    """The adversary has an account of their own and sprays guesses at other e-mails from
    one address, signing in to their own account between guesses: the address is still
    throttled after its limit (a trusted pair's success gives back nothing it was not
    counted)."""
    own, _ = _staff(box, clinic)
    address = f"192.0.2.{200 + uuid.uuid4().int % 50}"
    anonymous = Actor(uuid.UUID(int=0), "anonymous", ip_address=address)
    codec = TokenCodec(box.settings, box.keyring)
    limits = box.signin_limits

    def login(email: str, password: str) -> str:
        try:
            auth.login(lambda: box.service_uow(anonymous), email, password, None, address,
                       limits=limits, mint=codec.mint, passwords=box.passwords)
        except Unauthenticated:
            return "checked"
        except TooManyAttempts:
            return "throttled"
        return "signed in"

    assert login(own, PASSWORD) == "signed in"  # the pair is trusted from now on
    outcomes = []
    for i in range(limits.address + 1):
        outcomes.append(login(f"v{i}.{uuid.uuid4().hex[:8]}@clinica.example", "guess"))
        login(own, PASSWORD)
    assert outcomes[:limits.address] == ["checked"] * limits.address
    assert outcomes[-1] == "throttled"


def test_the_application_role_cannot_read_revive_or_forge_a_session(
        box: Container, clinic: uuid.UUID, app_client: TestClient) -> None:
    token = headers(box, clinic, "admin")
    assert app_client.post("/auth/logout", headers=token).status_code == 204
    for statement in ("SELECT * FROM staff_sessions",
                      "UPDATE staff_sessions SET revoked_at = NULL",
                      "INSERT INTO staff_sessions (token_id, user_id, clinic_id, role, kind, "
                      "expires_at) VALUES ('x', gen_random_uuid(), gen_random_uuid(), "
                      "'admin', 'development', now() + interval '1 hour')",
                      "SELECT * FROM login_throttle", "DELETE FROM login_throttle",
                      "SELECT neonpro_session_live('x', NULL, NULL, 'admin')"):
        with pytest.raises(DBAPIError, match="permission denied"), \
                tenant_session(box.database, clinic, SYSTEM.id) as session:
            session.execute(text(statement))
    is_problem(app_client.get("/clinic", headers=token), 401, "unauthenticated")


def test_neonpro_token_records_a_development_session(box: Container,
                                                     clinic: uuid.UUID) -> None:
    """A development token works because it is recorded; the same signature without the
    record (a token minted and never issued) does not."""
    codec = TokenCodec(box.settings, box.keyring)
    minted = codec.mint(uuid.uuid4(), clinic, ClinicRole.ADMIN)
    with TestClient(create_app(box), raise_server_exceptions=False) as client:
        bearer = {"Authorization": f"Bearer {minted.token}"}
        is_problem(client.get("/clinic", headers=bearer), 401, "unauthenticated")
        auth.open_development_session(box.service_uow(SYSTEM), minted)
        assert client.get("/clinic", headers=bearer).status_code == 200


def test_housekeeping_forgets_sign_in_rows_past_their_use(box: Container,
                                                          clinic: uuid.UUID) -> None:
    from neonpro.adapters.db.housekeeping import prune_expired  # noqa: PLC0415

    live = headers(box, clinic, "admin")
    with box.service_uow(SYSTEM) as tx:
        tx.connection.execute(text(
            "INSERT INTO staff_sessions (token_id, user_id, clinic_id, role, kind, expires_at)"
            " VALUES ('old-one', gen_random_uuid(), :c, 'admin', 'development', "
            "now() - interval '2 days')"), {"c": clinic})
        tx.connection.execute(text(
            "INSERT INTO login_throttle (scope, key, failures, updated_at, blocked_until) "
            "VALUES ('pair', 'quiet', 3, now() - interval '2 days', NULL), "
            "('pair', 'blocking', 0, now() - interval '2 days', now() + interval '1 hour')"))
        tx.commit()
    assert prune_expired(box.database).sign_in >= 2
    with box.service_uow(SYSTEM) as tx:
        sessions = set(tx.connection.execute(text(
            "SELECT token_id FROM staff_sessions")).scalars())
        keys = {bytes(k) for k in tx.connection.execute(text(
            "SELECT key FROM login_throttle")).scalars()}
    assert "old-one" not in sessions
    assert b"quiet" not in keys
    assert b"blocking" in keys  # a block in force is never forgotten
    with TestClient(create_app(box), raise_server_exceptions=False) as client:
        assert client.get("/clinic", headers=live).status_code == 200
