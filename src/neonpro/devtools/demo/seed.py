"""Run one demo seeding: check the sizes, then clinics and staff, patients, appointments."""

from __future__ import annotations

import time as clock
from datetime import date, datetime

import structlog

from neonpro.bootstrap import Container
from neonpro.devtools.demo.history import History
from neonpro.devtools.demo.patients import PatientSeeding
from neonpro.devtools.demo.reference import ZONE
from neonpro.devtools.demo.result import DemoResult, ProgressFn
from neonpro.devtools.demo.staff import StaffSeeding
from neonpro.devtools.demo_sizes import MAX_MONTHS, MAX_PATIENTS

log = structlog.get_logger(__name__)



class _Generator(StaffSeeding, PatientSeeding, History):
    """Every seeding step over one run's state (see :class:`~.state.Run`)."""


def seed_demo(container: Container, *, patients: int = 200, seed: int = 42, months: int = 12,
              progress: ProgressFn | None = None, today: date | None = None) -> DemoResult:
    """Create demonstration clinics, staff, patients, consents and appointments.

    Args:
        container: where to write (each service call is its own transaction).
        patients: how many patients (1 to ``MAX_PATIENTS``); 300 or more get a third clinic.
        seed: the random seed; a seed whose clinics exist raises :class:`DemoSeedExists`.
        months: months of appointment history before ``today`` (1 to ``MAX_MONTHS``);
            up to four weeks of future appointments are added.
        progress: called as ``progress(phase, done, total)``.
        today: the last day of the history (default: today in São Paulo).

    Raises:
        ValueError: a size out of range.
        DemoSeedExists: this seed's demo clinics are already in the database.
    """
    if not 1 <= patients <= MAX_PATIENTS:
        raise ValueError(f"patients must be between 1 and {MAX_PATIENTS}")
    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be between 1 and {MAX_MONTHS}")
    if seed < 0:
        raise ValueError("seed must not be negative")
    started = clock.perf_counter()
    gen = _Generator(container, patients=patients, seed=seed, months=months,
                     today=today or datetime.now(ZONE).date(), progress=progress)
    gen.create_clinics()
    gen.create_patients()
    gen.create_appointments()
    result = gen.result(months, clock.perf_counter() - started)
    log.debug("demo_seeded", seed=seed, clinics=len(result.clinics),
              patients=len(result.patients), appointments=result.appointments,
              seconds=round(result.seconds, 1))
    return result
