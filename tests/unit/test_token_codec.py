"""The bearer token check: a verified token is remembered until it expires, never past it,
and only the very token verified (not one with a changed byte, nor under another key)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from neonpro.adapters.auth import TokenCodec
from neonpro.domain.errors import Unauthenticated
from neonpro.domain.vocabulary import ClinicRole
from tests.conftest import make_settings

SECRET = "s" * 40


def _codec(secret: str = SECRET) -> TokenCodec:
    settings = make_settings("postgresql://nobody@127.0.0.1:1/none", jwt_secret=secret)
    return TokenCodec(settings, None)


def test_a_remembered_token_still_expires() -> None:
    codec = _codec()
    now = datetime.now(UTC)
    token = jwt.encode({"sub": str(uuid.uuid4()), "clinic_id": str(uuid.uuid4()),
                        "role": "dpo", "iss": make_settings("x").jwt_issuer, "iat": now,
                        "nbf": now, "exp": now + timedelta(seconds=2), "jti": "t1"},
                       SECRET, algorithm="HS256")
    assert codec.decode(token).role is ClinicRole.DPO
    assert codec.decode(token).token_id == "t1"  # remembered
    time.sleep(2.2)
    with pytest.raises(Unauthenticated):
        codec.decode(token)


def test_only_the_verified_token_is_remembered() -> None:
    codec = _codec()
    issued = codec.mint(uuid.uuid4(), uuid.uuid4(), ClinicRole.ADMIN)
    assert codec.decode(issued.token).token_id == issued.token_id
    head, payload, signature = issued.token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(Unauthenticated):
        codec.decode(forged)
    with pytest.raises(Unauthenticated):
        _codec("t" * 40).decode(issued.token)
