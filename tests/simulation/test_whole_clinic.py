"""The whole-clinic simulation, short: a few hundred random steps over two clinics.

The long run is ``bench/simulate.py --steps N --seed S`` (docs/reliability.md)."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.simulation.machine import STATS, ClinicSimulation, World

EXAMPLES = 16
STEPS = 30  # at most, per example: a few hundred steps in all


def test_a_clinic_lives_through_random_days(world: World) -> None:
    ClinicSimulation.world = world
    STATS.reset()
    began = time.monotonic()
    run_state_machine_as_test(ClinicSimulation, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        derandomize=True, suppress_health_check=list(HealthCheck), print_blob=True))
    print(f"simulation: {STATS.examples} examples, {STATS.steps} steps, "  # noqa: T201
          f"{STATS.checks} invariant checks, {STATS.requests} requests, "
          f"known open: {dict(STATS.known)}, {time.monotonic() - began:.0f} s")
    assert STATS.steps >= EXAMPLES
