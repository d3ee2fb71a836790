"""Prometheus metrics: one registry per process, filled by the API, the pool and the sealer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from neonpro.adapters.db.database import Database


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("neonpro_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("neonpro_http_request_duration_seconds", "HTTP latency",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.audit_sealed = Counter("neonpro_audit_events_sealed",
                                    "Audit events written and sealed into their chain",
                                    registry=self.registry)

    def watch_pool(self, db: Database) -> None:
        self.registry.register(_PoolCollector(db))


class _PoolCollector(Collector):
    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = {name: GaugeMetricFamily(f"neonpro_db_pool_{name}", f"pool {name}",
                                          labels=["pool"])
                  for name in ("size", "checked_in", "checked_out", "overflow")}
        for pool, stats in self._db.pool_stats().items():
            for name, gauge in gauges.items():
                gauge.add_metric([pool], float(getattr(stats, name)))
        yield from gauges.values()
