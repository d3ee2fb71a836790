"""One login per role: each kind of work connects as its own role, never through SET ROLE.

* owner: migrations (``NEONPRO_DATABASE_URL``);
* application: the API and every tenant transaction (``NEONPRO_APP_DATABASE_URL``);
* service: audited cross-clinic jobs, sealing, verification (``NEONPRO_SERVICE_DATABASE_URL``);
* legal hold: reads of blocked records (``NEONPRO_LEGAL_HOLD_DATABASE_URL``).

Production gives each its URL. Development, tests and the embedded default give one URL, a
superuser's: the migrations bootstrap the logins with it, and every process derives the
other URLs from it (same host and database, the role as user). Their passwords are derived
from that URL's password (HMAC-SHA256 with the role's name), so no extra secret has to be
stored or passed around, and the server is only ever sent a SCRAM verifier, never a
password. A URL without a password (trust or peer authentication, the test servers) gives
logins without one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Final

from sqlalchemy import Connection, make_url, text

from neonpro.adapters.db.security import Roles, bootstrap_roles_sql

SCRAM_ITERATIONS: Final = 4096


def role_password(secret: str, role: str) -> str:
    """The password of ``role``'s login, derived from the bootstrap URL's password."""
    digest = hmac.new(secret.encode(), f"neonpro-login-v1:{role}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


def url_password(url: str) -> str | None:
    password = make_url(url).password
    return password if isinstance(password, str) and password else None


def login_url(url: str, role: str) -> str:
    """``url`` with ``role`` as its user (and the role's derived password, if ``url`` has one).

    A URL that already names ``role`` is returned as it is.
    """
    parsed = make_url(url)
    if parsed.username == role:
        return url
    secret = url_password(url)
    return parsed.set(username=role, password=role_password(secret, role) if secret else None
                      ).render_as_string(hide_password=False)


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


def scram_verifier(password: str, salt: bytes | None = None,
                   iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5803 layout)."""
    salt = salt if salt is not None else os.urandom(16)
    stored, server = _scram_keys(password, salt, iterations)
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored).decode()}:{b64(server).decode()}")


def scram_matches(verifier: str | None, password: str) -> bool:
    """Whether ``verifier`` (from ``pg_authid``) accepts ``password``."""
    try:
        assert verifier is not None  # noqa: S101  (caught below)
        method, rest = verifier.split("$", 1)
        head, keys = rest.split("$", 1)
        iterations, salt = head.split(":", 1)
        stored, server = keys.split(":", 1)
        if method != "SCRAM-SHA-256":
            return False
        want = _scram_keys(password, base64.b64decode(salt), int(iterations))
    except (AssertionError, ValueError):
        return False
    return hmac.compare_digest(want[0], base64.b64decode(stored)) and hmac.compare_digest(
        want[1], base64.b64decode(server))


def ensure_logins(conn: Connection, roles: Roles, secret: str | None) -> None:
    """Create (or repair) the four logins; give each its derived password when ``secret``.

    Run with a superuser (or a role with CREATEROLE that administers these roles). A
    password is only written when the stored verifier does not already accept it, so a
    second run changes nothing (roles are cluster-wide: databases of one server share them).
    """
    conn.execute(text(bootstrap_roles_sql(roles)))
    if secret is None:
        return
    stored = _stored_verifiers(conn, roles)
    for role in (roles.owner, roles.app, roles.service, roles.legal_hold):
        password = role_password(secret, role)
        if stored is not None and scram_matches(stored.get(role), password):
            continue
        # a verifier, never the password itself, reaches the server (and its logs)
        verifier = scram_verifier(password)
        conn.exec_driver_sql(f"ALTER ROLE \"{role}\" PASSWORD '{verifier}'")


def _stored_verifiers(conn: Connection, roles: Roles) -> Mapping[str, str | None] | None:
    """Each login's stored verifier, or None when this user may not read ``pg_authid``."""
    superuser = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                             ).scalar()
    if not superuser:
        return None
    rows = conn.execute(text("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(:r)"),
                        {"r": [roles.owner, roles.app, roles.service, roles.legal_hold]}).all()
    return {r[0]: r[1] for r in rows}
