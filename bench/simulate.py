"""The whole-clinic simulation, long: ``tests/simulation/machine.py`` for N steps.

    .venv/bin/python bench/simulate.py --steps 20000 --seed 13
    .venv/bin/python bench/simulate.py --steps 500 --seed 1 --url postgresql://postgres@127.0.0.1:5432/postgres

Works in its own scratch database ``neonpro_simulate_*`` (created on the server of
``--url``, default ``NEONPRO_DATABASE_URL``, which is only used to CREATE/DROP it), migrated
to head and dropped at the end. Examples of up to ``--per-example`` steps run until
``--steps`` steps have run; each example opens two fresh clinics. A failing example is
shrunk by Hypothesis to a minimal sequence, printed, counted, and the run goes on with the
next seed. The last line sums up: steps, invariant checks, requests, failures, known open
defects hit (``KNOWN_OPEN``), duration and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NEONPRO_ENVIRONMENT", "test")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402
from tests.conftest import (  # noqa: E402
    create_database,
    drop_database,
    make_keyring,
    make_settings,
)
from tests.simulation.machine import STATS, ClinicSimulation, World  # noqa: E402

from neonpro.adapters.db import migrate  # noqa: E402
from neonpro.adapters.db.database import normalise_url  # noqa: E402
from neonpro.adapters.db.security import Roles  # noqa: E402
from neonpro.bootstrap import Container  # noqa: E402
from neonpro.entrypoints.api.app import create_app  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-example", type=int, default=50,
                        help="steps of one example at most (two fresh clinics each)")
    parser.add_argument("--batch", type=int, default=10,
                        help="examples per Hypothesis run (one seed each)")
    parser.add_argument("--answers", action="store_true",
                        help="also print how often each endpoint gave each status")
    parser.add_argument("--url", default=os.environ.get(
        "NEONPRO_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    admin = normalise_url(args.url)
    url = create_database(admin, "simulate")
    began = time.monotonic()
    failures: list[str] = []
    seed = args.seed
    try:
        migrate.upgrade(url, Roles())
        box = Container(make_settings(url, jwt_secret="s" * 32), database_url=url,
                        keyring=make_keyring())
        owner = create_engine(url, poolclass=NullPool)
        try:
            with TestClient(create_app(box), raise_server_exceptions=False) as client:
                ClinicSimulation.world = World(box, client, owner)
                STATS.reset()
                while STATS.steps < args.steps:
                    run = hypothesis_seed(seed)(_runner(args.batch, args.per_example))
                    try:
                        run()
                    except Exception as exc:
                        failures.append(f"seed {seed}: {exc}")
                        print(f"FAILURE (seed {seed}):", file=sys.stderr)
                        traceback.print_exception(exc, limit=0, file=sys.stderr)
                    print(f"seed {seed}: {STATS.steps} steps, {STATS.checks} checks, "
                          f"{len(failures)} failures, {time.monotonic() - began:.0f} s",
                          flush=True)
                    seed += 1
        finally:
            owner.dispose()
            box.close()
    finally:
        drop_database(admin, url)
    load = os.getloadavg()
    print(f"steps={STATS.steps} examples={STATS.examples} invariant_checks={STATS.checks} "
          f"requests={STATS.requests} failures={len(failures)} "
          f"known_open={dict(STATS.known)} seeds={args.seed}..{seed - 1} "
          f"duration_s={time.monotonic() - began:.0f} "
          f"load={load[0]:.1f},{load[1]:.1f},{load[2]:.1f} cpus={os.cpu_count()}")
    if args.answers:
        for answer, count in sorted(STATS.answers.items()):
            print(f"  {count:6d}  {answer}")
    for failure in failures:
        print(f"failure: {failure.splitlines()[0]}")
    return 1 if failures else 0


def _runner(examples: int, steps: int):  # type: ignore[no-untyped-def]  # noqa: ANN202
    def run() -> None:
        run_state_machine_as_test(ClinicSimulation, settings=settings(
            max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
            suppress_health_check=list(HealthCheck), print_blob=True))
    return run


if __name__ == "__main__":
    sys.exit(main())
