"""The database restarts under load (docs/reliability.md, scenario 1; short version: the
full one is ``bench/reliability.py restart``): a private cluster is stopped and started
while clients book and read. During the outage every answer is a 503 problem+json with
Retry-After within the request timeout; service resumes by itself within 10 s; every 2xx
booking is in the database, every failed one left nothing; the audit chain verifies."""

from __future__ import annotations

from collections import Counter

import pytest

from neonpro.entrypoints.api.app import create_app
from tests.reliability.harness import (
    PrivateCluster,
    ThreadServer,
    build_world,
    percentile,
    restart_scenario,
    restart_world,
    say,
)

pytestmark = pytest.mark.slow
REQUEST_TIMEOUT_S = 8.0


def test_service_survives_a_database_restart_under_load(cluster: PrivateCluster) -> None:
    box, _url = restart_world(cluster, pool_size=6, max_overflow=4, connect_timeout_s=2,
                              request_timeout_s=REQUEST_TIMEOUT_S)
    box.start_sealer(interval=0.3)
    server = ThreadServer(create_app(box))
    try:
        world = build_world(box, patients=30, lanes=8)
        report = restart_scenario(cluster, box, world, server.base, clients=8, before_s=3,
                                  outage_s=3, after_s=12, timeout_s=REQUEST_TIMEOUT_S + 7)
    finally:
        server.stop()
        box.close()
    outage = report.during_outage()
    statuses = Counter(o.status for o in report.outcomes)
    resumed = report.resumed_after()
    say(f"restart under load: {len(report.outcomes)} requests in {report.seconds:.0f} s "
        f"{dict(statuses)}; during the outage {dict(Counter(o.status for o in outage))}; "
        f"max latency {max(o.seconds for o in report.outcomes):.2f} s, p99 "
        f"{percentile([o.seconds for o in report.outcomes], 99):.2f} s; resumed after "
        f"{', '.join(f'{r:.2f} s' for r in resumed)}; bookings confirmed "
        f"{report.check.confirmed}, refused and absent {report.check.refused}")
    assert len(outage) >= 8
    # never a 500, never a hang: every failure is an answered 503 problem with Retry-After
    failed = [o for o in report.outcomes if not 200 <= o.status < 300]
    assert failed
    assert {o.status for o in failed} == {503}
    assert all(o.problem_json and o.retry_after for o in failed)
    assert max(o.seconds for o in report.outcomes) <= REQUEST_TIMEOUT_S + 1
    # back by itself within 10 s, and nothing failing from then on
    assert all(r <= 10 for r in resumed), resumed
    assert report.failures_after(10) == []
    # nothing lost, nothing half-written
    assert report.check.ok, (report.check.lost, report.check.kept)
    assert report.check.confirmed > 20
    assert report.check.refused > 0
    assert report.audit
