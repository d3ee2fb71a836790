"""A sign-in costs one argon2 verification whatever the account: the time of the answer
must not tell an unknown e-mail, an account without a usable hash and a real one apart."""

from __future__ import annotations

from typing import Any

import pytest

from neonpro.adapters import auth
from neonpro.adapters.auth import hash_password, verify_password


@pytest.mark.parametrize("stored", [None, "!", "not-an-argon2-hash", ""])
def test_accounts_without_a_usable_hash_still_pay_one_verification(
        stored: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = auth._hasher
    done: list[str] = []

    class Counted:
        def verify(self, hashed: str, password: Any) -> bool:
            try:
                return real.verify(hashed, password)
            finally:
                done.append("argon2" if hashed.startswith("$argon2") else "refused")

    monkeypatch.setattr(auth, "_hasher", Counted())
    assert verify_password(stored, "qualquer senha") is False
    assert "argon2" in done  # a full verification against the dummy hash was paid


def test_a_real_hash_verifies() -> None:
    stored = hash_password("correct horse")
    assert verify_password(stored, "correct horse") is True
    assert verify_password(stored, "wrong") is False
