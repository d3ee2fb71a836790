"""The outcome model's weights (see :mod:`neonpro.devtools.demo`): no-shows, cancellations,
reschedules, confirmations and booking lead times."""

from __future__ import annotations

import math
from typing import Final

LONG_GAP_DAYS: Final = 120
MAX_PRIOR: Final = 3
EARLY: Final = 9 * 60
LATE: Final = 17 * 60

NS_BASE: Final = -2.4
NS_LATENT: Final = 1.0
NS_PRIOR: Final = 0.45
NS_FIRST_VISIT: Final = 0.5
NS_RESCHEDULED: Final = 0.45
NS_LONG_GAP: Final = 0.3
NS_CONFIRMED: Final = -0.5
NS_WEEKDAY: Final = (0.2, 0.0, 0.0, 0.0, 0.25, 0.35, 0.0)  # Monday .. Sunday
NS_EARLY: Final = 0.25
NS_LATE: Final = 0.3
NS_LEAD: Final = 0.8
LEAD_PIVOT_DAYS: Final = 7.0
LEAD_MIX: Final = ((0.3, 0.0, 3.0), (0.4, 3.0, 21.0), (0.3, 21.0, 75.0))  # share, days
CANCEL_BASE, CANCEL_LATENT = -2.9, 0.35
RESCHEDULE_BASE, RESCHEDULE_LATENT = -2.8, 0.4
CONFIRM_BASE, CONFIRM_LATENT = 0.8, -0.9


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
