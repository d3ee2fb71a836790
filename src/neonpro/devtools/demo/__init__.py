"""Demonstration data: synthetic clinics, staff, patients, consents and months of appointments.

A developer tool (:mod:`neonpro.devtools`), not a use case: no service imports it.

Everything goes through the services, so booking rules, the overlap constraint, encryption
and blind indexes apply exactly as for real data. One ``random.Random(seed)`` drives every
choice: the same seed gives the same clinics, names, CPFs, counts and statuses (ids are
uuid4 from the repositories and differ). Dates are relative to ``today`` (the clinic's
local date when it runs, unless given): the history ends on the day it runs, so the
calendar shifts with that day while the sequence of choices does not.

Outcome model (a real, learnable signal for the no-show predictor). Each patient has a
latent unreliability ``z ~ N(0, 1)``. Appointments are resolved day by day in time order,
and a past appointment that is neither rescheduled nor cancelled is a no-show with
probability ``sigmoid(logit)`` where ``logit`` adds up:

- ``NS_BASE`` and ``NS_LATENT * z`` (so past no-shows reveal ``z``),
- ``NS_PRIOR * min(past no-shows, 3)`` (habit, on top of what ``z`` explains),
- ``NS_FIRST_VISIT`` when the patient never attended before,
- ``NS_RESCHEDULED`` when the appointment was moved (``reschedule_count > 0``),
- ``NS_LONG_GAP`` when the last attended visit is more than ``LONG_GAP_DAYS`` ago,
- a small weekday effect (Monday, Friday, Saturday) and hour effect (before 09:00, from
  17:00), and ``NS_CONFIRMED`` when the patient confirmed (less likely to miss),
- ``NS_LEAD * (log1p(lead days) - log1p(LEAD_PIVOT_DAYS))``: bookings made long in
  advance are missed more often, same-week ones less.

Lead time is real data, not a label: each booking gets a booking moment (a mix of
same-week, two-to-three-week and one-to-three-month leads from its own random stream,
never later than the seeding moment), and the scheduling service records it as the
appointment's ``created_at`` (its ``booked_at`` argument, meant for imports of past
bookings; the API never passes it). A reschedule is booked a few days before the original
slot. Cancellations, reschedules and confirmations also depend a little on ``z``. The other
times the repositories stamp (patient_confirmed_at, cancelled_at, actual start and end,
consent given_at) are the seeding time, not the appointment's: they carry no signal and
must not be used as features on demo data.

Layout: :mod:`.reference` (the fixed world), :mod:`.people` (names and identifiers),
:mod:`.model` (the outcome model's weights), :mod:`.state` (one run's state),
:mod:`.staff`, :mod:`.patients`, :mod:`.calendar` and :mod:`.history` (the seeding steps),
:mod:`.seed` (:func:`seed_demo`), :mod:`.result` (what a run reports).
"""

from neonpro.devtools.demo.people import demo_cnpj, is_demo_clinic
from neonpro.devtools.demo.reference import ZONE
from neonpro.devtools.demo.result import DemoResult, DemoSeedExists, Outcome, ProgressFn
from neonpro.devtools.demo.seed import seed_demo
from neonpro.devtools.demo_sizes import (
    MAX_MONTHS,
    MAX_PATIENTS,
    RUN_DEMO_MONTHS,
    RUN_DEMO_PATIENTS,
)

__all__ = [
    "MAX_MONTHS",
    "MAX_PATIENTS",
    "RUN_DEMO_MONTHS",
    "RUN_DEMO_PATIENTS",
    "ZONE",
    "DemoResult",
    "DemoSeedExists",
    "Outcome",
    "ProgressFn",
    "demo_cnpj",
    "is_demo_clinic",
    "seed_demo",
]
