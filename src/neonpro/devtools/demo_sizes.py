"""The demo's sizes, apart from the seeding code: the command line declares its options with
them without importing the services and the database (``neonpro --help`` stays fast)."""

from __future__ import annotations

from typing import Final

MAX_PATIENTS: Final = 20_000
MAX_MONTHS: Final = 60
# what `neonpro serve --demo` (`./dev run`) loads: a year, so that its first clinic (the
# one it prints) has the history to fit a no-show model and evaluate it with the default
# 3-month hold-out (`neonpro noshow evaluate`); 60 patients over 3 months had none
RUN_DEMO_PATIENTS: Final = 120
RUN_DEMO_MONTHS: Final = 12
