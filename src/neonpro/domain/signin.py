"""Sign-in throttling: what is counted, and how much is allowed (docs/security.md).

Failed sign-ins are counted per address, per e-mail (as typed: an e-mail nobody has is
counted like any other, so throttling never tells whether an account exists) and per pair
of both. Each scope allows so many attempts per window; one more blocks it for
``first_block``, doubled at each further block up to ``longest_block``. A pair that signed
in successfully within ``trust_for`` is held back by its own counter only, so a stranger
throttling an address or an account cannot keep that account's user out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class ThrottleKeys:
    """HMACs of what a sign-in names: its address (None when unknown), the e-mail as
    typed (lower-cased), and the pair of both."""

    address: bytes | None
    account: bytes
    pair: bytes


@dataclass(frozen=True)
class ThrottleLimits:
    """Attempts allowed per window, per scope, and the backoff of each block."""

    pair: int
    account: int
    address: int
    window: timedelta
    first_block: timedelta
    longest_block: timedelta
    trust_for: timedelta

    def of(self, scope: str) -> int:
        return {"pair": self.pair, "account": self.account, "address": self.address}[scope]
