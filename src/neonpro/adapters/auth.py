"""Passwords (argon2, via argon2-cffi) and access tokens (JWT, via PyJWT)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from neonpro.adapters.crypto import KeyRing
from neonpro.config import Environment, Settings
from neonpro.domain.errors import Unauthenticated
from neonpro.domain.ports_auth import IssuedToken
from neonpro.domain.vocabulary import ClinicRole

log = structlog.get_logger(__name__)
_hasher = PasswordHasher()
# verified against when the e-mail is unknown, so both cases cost the same time
_DUMMY_HASH = _hasher.hash("neonpro-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; it costs one argon2 verification whatever the account:
    unknown, without a usable hash (a no-login marker, say) or real, so the time of the
    answer tells nothing about which."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except InvalidHashError:  # refused before any work: spend the same work anyway
        with contextlib.suppress(VerifyMismatchError, VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        return False
    except (VerifyMismatchError, VerificationError):
        return False


class Argon2Passwords:
    """The :class:`~neonpro.domain.ports_auth.Passwords` port: argon2 hashes."""

    __slots__ = ()

    def hash(self, password: str) -> str:
        return hash_password(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        return verify_password(stored_hash, password)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token says the caller is."""

    user_id: uuid.UUID
    clinic_id: uuid.UUID
    role: ClinicRole
    token_id: str


VERIFIED_TOKENS = 10_000  # tokens remembered as verified, at most


class TokenCodec:
    """Issues and checks bearer tokens carrying user id, clinic id and role."""

    def __init__(self, settings: Settings, keyring: KeyRing | None) -> None:
        self._algorithm = settings.jwt_algorithm
        self._issuer = settings.jwt_issuer
        self._ttl = timedelta(minutes=settings.token_ttl_minutes)
        self._signing, self._verifying = self._keys(settings, keyring)
        # tokens whose signature and claims were verified, with their expiry: checking an
        # HMAC and parsing the claims was a tenth of a GET's server CPU (py-spy, see
        # docs/performance.md). A memo of a pure function: whether the token is still
        # expired is asked at every use, and its session (signed out, revoked, the
        # membership changed) is checked on every request regardless (deps.confirm_session)
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._verified_lock = threading.Lock()

    def _keys(self, settings: Settings, keyring: KeyRing | None) -> tuple[Any, Any]:
        if settings.jwt_algorithm == "RS256":
            if settings.jwt_public_key_file is None:
                msg = "RS256 needs NEONPRO_JWT_PUBLIC_KEY_FILE"
                raise ValueError(msg)
            public = settings.jwt_public_key_file.read_text(encoding="utf-8")
            private = (settings.jwt_private_key_file.read_text(encoding="utf-8")
                       if settings.jwt_private_key_file else None)
            return private, public
        if settings.jwt_secret is not None:
            secret = settings.jwt_secret.get_secret_value().encode()
            return secret, secret
        if settings.environment is Environment.PRODUCTION or keyring is None:
            msg = "set NEONPRO_JWT_SECRET (HS256) or an RS256 key pair"
            raise ValueError(msg)
        # development: a secret derived from the (development) key file, stable across runs
        secret = hmac.new(keyring.blind_index_key, b"neonpro-dev-jwt-v1", hashlib.sha256).digest()
        # the development keys' own warning (once a run) covers it: no second warning
        log.debug("dev_jwt_secret_in_use", detail="derived from development keys")
        return secret, secret

    def mint(self, user_id: uuid.UUID, clinic_id: uuid.UUID, role: ClinicRole) -> IssuedToken:
        """A signed token and what its session row records (services.auth opens it: a
        token without a session is refused on its first request)."""
        if self._signing is None:
            msg = "this process has no signing key (NEONPRO_JWT_PRIVATE_KEY_FILE)"
            raise ValueError(msg)
        now = datetime.now(UTC)
        token_id = uuid.uuid4().hex
        claims = {"sub": str(user_id), "clinic_id": str(clinic_id), "role": role.value,
                  "iss": self._issuer, "iat": now, "nbf": now, "exp": now + self._ttl,
                  "jti": token_id}
        token = jwt.encode(claims, self._signing, algorithm=self._algorithm)
        return IssuedToken(token, token_id, user_id, clinic_id, role, now + self._ttl)

    def decode(self, token: str) -> Principal:
        """The token's caller, if its signature and claims hold and it has not expired
        (``Unauthenticated`` otherwise)."""
        found = self._verified.get(token)
        if found is not None and time.time() < found[1]:
            return found[0]
        principal, expires = self._verify(token)
        with self._verified_lock:
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()  # bounded; the next requests verify again
            self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(token, self._verifying, algorithms=[self._algorithm],
                                issuer=self._issuer,
                                options={"require": ["exp", "sub", "iss", "jti"]})
            fields = [claims["sub"], claims["clinic_id"], claims["role"], claims["jti"]]
            if not all(isinstance(f, str) for f in fields):  # a list or an object: no claim
                raise TypeError("claims must be strings")  # noqa: TRY301
            clinic = uuid.UUID(claims["clinic_id"])
            if clinic.int == 0:  # the system chain's clinic is no tenant's
                raise ValueError("nil clinic")  # noqa: TRY301
            expires = float(claims["exp"])
            return Principal(uuid.UUID(claims["sub"]), clinic, ClinicRole(claims["role"]),
                             claims["jti"]), expires
        except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise Unauthenticated("invalid or expired token") from exc
