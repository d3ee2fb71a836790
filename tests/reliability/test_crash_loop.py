"""The crash loop, short (CI): 6 clients book through the API with idempotency keys while
the postmaster of a private cluster is killed with ``kill -9`` five times at random moments
and restarted each time. Nothing acknowledged is lost, nothing is done twice, every booking
is decided, the audit chain verifies. The long run is ``bench/reliability.py crashloop``.

The cluster is tuned for speed the way a DBA might (``synchronous_commit = off``: a COMMIT is
acknowledged before its record is on disk): the application must still never answer 2xx
for a write a crash can take back."""

from __future__ import annotations

import pytest

from neonpro.entrypoints.api.app import create_app
from tests.reliability.crashloop import crash_loop, tuned_for_speed
from tests.reliability.harness import PrivateCluster, ThreadServer, build_world, restart_world, say

pytestmark = pytest.mark.slow
REQUEST_TIMEOUT_S = 6.0


def test_kill_9_five_times_under_load_loses_nothing(cluster: PrivateCluster) -> None:
    tuned_for_speed(cluster)
    box, _url = restart_world(cluster, pool_size=6, max_overflow=4, connect_timeout_s=2,
                              request_timeout_s=REQUEST_TIMEOUT_S)
    box.start_sealer(interval=0.3)
    server = ThreadServer(create_app(box))
    try:
        world = build_world(box, patients=20, lanes=6)
        report = crash_loop(cluster, box, world, server.base, clients=6, kills=5,
                            gap_s=(1.5, 4.0), timeout_s=REQUEST_TIMEOUT_S + 9)
    finally:
        server.stop()
        box.close()
    say("\n" + report.summary())
    acknowledged = [b for b in report.bookings if b.acknowledged is not None]
    assert len(report.kills) == 5
    assert report.lost == []  # every acknowledged booking is there, with its audit event
    assert report.doubled == []  # no retry did the work twice
    assert [b for b in report.bookings if not b.decided] == []
    assert [b.refused for b in report.bookings if b.refused] == []
    assert len(acknowledged) >= 20
    assert report.audit
    assert all(r <= 15 for r in report.recovery()), report.recovery()
    # the kills really hit work in flight: some answers had to be asked again
    assert sum(n for a, n in report.answers.items() if not a.startswith("201")) > 0
