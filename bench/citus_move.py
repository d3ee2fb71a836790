"""Moving a busy clinic on a local Citus cluster while the API serves it (issue 19, item 6).

    .venv/bin/python bench/citus_move.py [--rounds 3] [--clients 4] [--patients 2000]

Starts a Citus cluster of its own (coordinator + 2 workers on private ports of this
machine, removed afterwards), migrates it, gives a clinic ``--patients`` patients and a
neighbour clinic as many, then per round: a fresh clinic of that size served through the
real API by ``--clients`` client threads, isolated to shards of its own and moved to the
other worker and back (``neonpro.devtools.clinic_move``). Prints each step's duration,
the retries, the requests, the failures, what was found afterwards, and the latency of
the requests that started during a step against those that did not. One machine, 2 cores:
the figures are what the operation costs a clinic's users here, not a production network.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.config import Environment, Settings
from neonpro.devtools import citus
from neonpro.devtools.clinic_move import MoveReport, move_under_load
from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import clinics
from neonpro.services import patients as service

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import make_keyring


def _free_ports(count: int) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if all(citus.port_free(port + i) for i in range(count)):
            return port


def _clinic(box: Container, name: str, patients: int) -> uuid.UUID:
    """A clinic with ``patients`` patients, registered through the service layer."""
    clinic = clinics.create_clinic(box.service_uow(SystemActors.CLI), ClinicCreate(name=name)).id
    for n in range(patients):
        service.register_patient(box.uow(clinic, SystemActors.DEMO_SEED),
                                 PatientCreate(full_name=f"Paciente Base {n}"))
    return clinic


def _row(report: MoveReport) -> list[str]:
    during, outside = report.latency_ms(during=True), report.latency_ms(during=False)
    steps = " / ".join(f"{seconds:.2f}" for _, seconds in report.steps)
    return [steps, str(len(report.retries)), str(report.requests), str(len(report.load.failures)),
            f"{report.found}/{len(report.load.acknowledged)}",
            f"{outside[0]:.0f} / {outside[1]:.0f}", f"{during[0]:.0f} / {during[1]:.0f} / "
            f"{during[2]:.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--patients", type=int, default=300)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    base = Path(tempfile.mkdtemp(prefix="neonpro-citus-bench-", dir="/tmp"))
    cluster = citus.up(base, _free_ports(3), workers=2, shard_count=8)
    try:
        url = cluster.url()
        migrate.upgrade(url, Roles())
        settings = Settings(environment=Environment.TEST, database_url=url,
                            _env_file=None)  # type: ignore[call-arg]
        box = Container(settings, database_url=url, keyring=make_keyring())
        try:
            _run(box, cluster, args)
        finally:
            box.close()
    finally:
        citus.down(base)
        shutil.rmtree(base, ignore_errors=True)


def _run(box: Container, cluster: citus.LocalCluster, args: argparse.Namespace) -> None:
    _clinic(box, "Vizinha", args.patients)
    print("moving a busy clinic: isolate to its own shards, move to the other worker, move "
          f"back; {args.clients} API clients; one machine (2 cores), coordinator + 2 workers")
    header = ["steps (s): isolate / move / back", "retries", "requests", "failed", "found",
              "ms outside: median / p99", "ms during: median / p99 / max"]
    print(" | ".join(header))
    for n in range(args.rounds):
        clinic = _clinic(box, f"Movida {n}", args.patients)
        report = move_under_load(box, cluster.url(), clinic, clients=args.clients)
        print(" | ".join(_row(report)), flush=True)
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        version = conn.execute("SELECT citus_version()").fetchone()
    print(f"({version[0] if version else 'Citus'})")


if __name__ == "__main__":
    main()
