"""The slow reliability scenarios of docs/reliability.md (not in CI):

    .venv/bin/python bench/reliability.py restart     # scenario 1 at full size
    .venv/bin/python bench/reliability.py soak        # scenario 6: 10 minutes, 20 clients
    .venv/bin/python bench/reliability.py crashloop   # scenario 7: 20 clients, 20 kill -9

``restart``: a private PostgreSQL cluster (started here as ``postgres`` when run as root,
on a free loopback port; the shared server is never touched), 20 clients booking and
reading over HTTP while the cluster is stopped and started three times: a fast shutdown,
a crash (``immediate``: recovery on start) and a fast shutdown again, 5 s down each time.
Prints the answers during the outages, the time to recover, bookings confirmed and refused,
and checks every invariant (exit 1 if one fails).

``soak``: a scratch database ``neonpro_bench_*`` on ``--url`` (only CREATE/DROP DATABASE
there), ``neonpro serve`` as a subprocess with production settings (pool 20+10), 20 clients
of mixed traffic (reads, name searches, bookings) for ``--minutes``; per minute: requests,
errors, p50/p99, the server's RSS. Passes with zero errors, last minute's p99 within 1.5x the
first's and RSS growth from the end of the first minute under 10 %.

``crashloop``: a private cluster tuned for speed (``synchronous_commit = off``), 20 clients
booking with idempotency keys (each booking retried with its key until decided) and reading,
while the postmaster is killed with ``kill -9`` 20 times at random moments (2-6 s apart) and
restarted each time. Prints attempted, acknowledged, lost, doubled, undecided bookings, the
answers (commit_outcome_unknown among them), the recovery time after each restart and the
load average; passes with nothing lost or doubled, everything decided and the chain verified.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import create_database, drop_database
from tests.reliability.crashloop import crash_loop, tuned_for_speed
from tests.reliability.harness import (
    Load,
    Outcome,
    PrivateCluster,
    ProcessServer,
    ThreadServer,
    World,
    build_world,
    check_bookings,
    cluster_requirements,
    percentile,
    restart_scenario,
    restart_world,
)

from neonpro.adapters.crypto import generate_key_file
from neonpro.bootstrap import Container
from neonpro.config import Environment, Settings
from neonpro.entrypoints.api.app import create_app

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def served_cluster(clients: int, timeout_s: float, *, tuned: bool = False,
                   ) -> Iterator[tuple[PrivateCluster, Container, ThreadServer, World]]:
    """A private cluster (tuned for speed if asked), the API on it, a world of ``clients``
    lanes; all removed afterwards."""
    found = cluster_requirements()
    if isinstance(found, str):
        raise SystemExit(f"cannot run: {found}")
    cluster = PrivateCluster(*found)
    cluster.start()
    try:
        if tuned:
            tuned_for_speed(cluster)
        box, _url = restart_world(cluster, pool_size=20, max_overflow=10, connect_timeout_s=2,
                                  request_timeout_s=timeout_s)
        box.start_sealer()
        server = ThreadServer(create_app(box))
        try:
            yield cluster, box, server, build_world(box, patients=300, lanes=clients)
        finally:
            server.stop()
            box.close()
    finally:
        cluster.destroy()


def restart(args: argparse.Namespace) -> int:
    timeout_s = 10.0
    with served_cluster(args.clients, timeout_s) as (cluster, box, server, world):
        report = restart_scenario(cluster, box, world, server.base, clients=args.clients,
                                  before_s=10, outage_s=5, after_s=15,
                                  modes=("fast", "immediate", "fast"), timeout_s=timeout_s + 10)
    outage = report.during_outage()
    failed = [o for o in report.outcomes if not 200 <= o.status < 300]
    resumed = report.resumed_after()
    print(f"clients {args.clients}, {len(report.outcomes)} requests in {report.seconds:.0f} s: "
          f"{dict(Counter(o.status for o in report.outcomes))}")
    print(f"during the outages: {dict(Counter(o.status for o in outage))}, problems "
          f"{dict(Counter(o.problem for o in failed))}")
    print(f"latency max {max(o.seconds for o in report.outcomes):.2f} s, p99 "
          f"{percentile([o.seconds for o in report.outcomes], 99) * 1000:.0f} ms "
          f"(request timeout {timeout_s:g} s)")
    print("resumed after: " + ", ".join(f"{r:.2f} s" for r in resumed))
    print(f"bookings: {report.check.confirmed} confirmed and present, {report.check.refused} "
          f"refused and absent, lost {len(report.check.lost)}, kept though refused "
          f"{len(report.check.kept)}; audit verify {'ok' if report.audit else 'FAILED'}")
    problems = []
    if {o.status for o in failed} - {503}:
        problems.append(f"non-503 failures: {Counter(o.status for o in failed)}")
    if not all(o.problem_json and o.retry_after for o in failed):
        problems.append("a 503 without problem+json or Retry-After")
    if max(o.seconds for o in report.outcomes) > timeout_s + 1:
        problems.append("an answer slower than the request timeout")
    if any(r > 10 for r in resumed) or report.failures_after(10):
        problems.append("not resumed within 10 s")
    if not report.check.ok or not report.audit:
        problems.append("data lost, half-written, or the audit chain broken")
    print("PASS" if not problems else "FAIL: " + "; ".join(problems))
    return 1 if problems else 0


class MixedLoad(Load):
    """Reads (50 %), name searches (20 %) and bookings (30 %)."""

    def _read(self, client: httpx.Client, rng: random.Random) -> Outcome:
        if rng.random() < 0.4:
            term = rng.choice(["teste", "paciente", "00", "1"])
            outcome, _ = self._call(client, "search",
                                    lambda: client.get("/patients", params={"name": term}))
            return outcome
        return super()._read(client, rng)


def soak(args: argparse.Namespace) -> int:
    admin = os.environ.get("NEONPRO_DATABASE_URL", args.url)
    url = create_database(admin, "bench")
    workdir = Path(tempfile.mkdtemp(prefix="neonpro-soak-"))
    server = None
    try:
        from neonpro.adapters.db import migrate
        from neonpro.adapters.db.security import Roles

        migrate.upgrade(url, Roles())
        key_file = workdir / "keys.json"
        generate_key_file(key_file)
        secret = uuid.uuid4().hex * 2
        settings = Settings(environment=Environment.PRODUCTION, database_url=url,
                            key_file=key_file, jwt_secret=secret, _env_file=None)
        box = Container(settings, database_url=url)
        world = build_world(box, patients=300, lanes=args.clients, days_ahead=3)
        box.close()
        server = ProcessServer({"NEONPRO_ENVIRONMENT": "production",
                                "NEONPRO_DATABASE_URL": url,
                                "NEONPRO_KEY_FILE": str(key_file),
                                "NEONPRO_JWT_SECRET": secret}, workdir)
        load = MixedLoad(server.base, world, clients=args.clients, write_share=0.3,
                         timeout_s=30)
        minutes: list[dict[str, float]] = []
        load.start()
        t0 = time.monotonic()
        seen = 0
        try:
            for minute in range(args.minutes):
                end = t0 + 60 * (minute + 1)
                while time.monotonic() < end:
                    time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                window = load.snapshot()[seen:]
                seen += len(window)
                lat = [o.seconds for o in window]
                errors = sum(not 200 <= o.status < 300 for o in window)
                row = {"minute": minute + 1, "requests": len(window), "errors": errors,
                       "p50": percentile(lat, 50) * 1000, "p99": percentile(lat, 99) * 1000,
                       "rss": server.rss_kib() / 1024}
                minutes.append(row)
                print(f"minute {minute + 1:2d}: {len(window):6d} req, {errors} errors, p50 "
                      f"{row['p50']:.0f} ms, p99 {row['p99']:.0f} ms, server RSS "
                      f"{row['rss']:.1f} MiB", flush=True)
        finally:
            outcomes = load.stop()
        errors = [o for o in outcomes if not 200 <= o.status < 300]
        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        check = check_bookings(plain, world.clinic, outcomes)
        first, last = minutes[0], minutes[-1]
        growth = (last["rss"] - first["rss"]) / first["rss"]
        ratio = last["p99"] / first["p99"]
        print(f"{len(outcomes)} requests ({dict(Counter(o.op for o in outcomes))}), "
              f"{len(errors)} errors {dict(Counter(o.status for o in errors))}")
        print(f"p99 first minute {first['p99']:.0f} ms, last {last['p99']:.0f} ms "
              f"(ratio {ratio:.2f}, limit 1.5); RSS {first['rss']:.1f} -> {last['rss']:.1f} MiB "
              f"({growth * 100:+.1f} %, limit 10 %)")
        print(f"bookings confirmed and present {check.confirmed}, lost {len(check.lost)}")
        ok = not errors and ratio <= 1.5 and growth < 0.10 and check.ok
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.stop()
        drop_database(admin, url)


def crashloop(args: argparse.Namespace) -> int:
    timeout_s = 10.0
    load_before = os.getloadavg()
    with served_cluster(args.clients, timeout_s, tuned=True) as (cluster, box, server, world):
        report = crash_loop(cluster, box, world, server.base, clients=args.clients,
                            kills=args.kills, gap_s=(2.0, 6.0), timeout_s=timeout_s + 10)
    recovery = report.recovery()
    undecided = [b for b in report.bookings if not b.decided]
    print(report.summary())
    print(f"recovery: median {percentile(recovery, 50):.2f} s, max {max(recovery):.2f} s")
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    problems = []
    if report.lost or report.doubled:
        problems.append(f"lost {report.lost[:5]}, doubled {report.doubled[:5]}")
    if undecided or [b for b in report.bookings if b.refused]:
        problems.append(f"{len(undecided)} undecided or refused bookings")
    if not report.audit:
        problems.append("the audit chain does not verify")
    print("PASS" if not problems else "FAIL: " + "; ".join(problems))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="scenario", required=True)
    r = sub.add_parser("restart", help="database restarts under load (private cluster)")
    r.add_argument("--clients", type=int, default=20)
    s = sub.add_parser("soak", help="mixed traffic for --minutes")
    s.add_argument("--clients", type=int, default=20)
    s.add_argument("--minutes", type=int, default=10)
    s.add_argument("--url", default=DEFAULT_ADMIN_URL,
                   help="admin URL of the server for the scratch database")
    c = sub.add_parser("crashloop", help="kill -9 the postmaster under load (private cluster)")
    c.add_argument("--clients", type=int, default=20)
    c.add_argument("--kills", type=int, default=20)
    args = parser.parse_args(argv)
    scenarios = {"restart": restart, "soak": soak, "crashloop": crashloop}
    return scenarios[args.scenario](args)


if __name__ == "__main__":
    raise SystemExit(main())
