"""FastAPI application factory: built from a container, never at import time."""

from __future__ import annotations

import gc
import hmac
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from neonpro import __version__
from neonpro.adapters.auth import TokenCodec
from neonpro.adapters.metrics import Metrics
from neonpro.bootstrap import Container
from neonpro.config import Settings
from neonpro.entrypoints import console
from neonpro.entrypoints.api import docs, idempotency, problems, resilience
from neonpro.entrypoints.api.middleware import BodyLimit, LastResort, RequestContext
from neonpro.entrypoints.api.routers import (
    appointments,
    audit,
    auth,
    catalog,
    consents,
    erasure,
    feed,
    incidents,
    lgpd,
    noshow,
    patients,
    retention,
    staff,
    telemedicine,
)
from neonpro.services import database

DESCRIPTION = """LGPD-compliant data management for Brazilian clinics.

Sign in with `POST /auth/login` (or, in development, `neonpro token --clinic ID --role admin`)
and send `Authorization: Bearer <token>`. Every request runs in the token's clinic: row-level
security in the database backs it. Errors are RFC 9457 problem+json documents.
"""


def create_app(container: Container) -> FastAPI:
    """The API over ``container``; the caller owns the container's lifetime."""
    app = FastAPI(title="neonpro", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None)  # /docs: served offline (docs.py)
    metrics = Metrics()
    metrics.watch_pool(container.database)
    app.state.container = container
    app.state.codec = TokenCodec(container.settings, container.keyring)
    app.state.metrics = metrics
    container.metrics = metrics
    problems.install(app)
    _include_routers(app)
    docs.install(app)
    console.install(app)
    _health_routes(app, container, metrics)
    _stop_feed_on_shutdown(app)
    _middleware(app, container.settings, metrics)
    return app


def _include_routers(app: FastAPI) -> None:
    """Every API router, answering the common problems."""
    for router in (catalog.router, patients.router, appointments.router,
                   consents.router, audit.router, telemedicine.router, erasure.router,
                   erasure.held_router, retention.router,
                   incidents.router, lgpd.router, noshow.router, feed.router, staff.router):
        app.include_router(router, responses=problems.COMMON)
    app.include_router(auth.router, responses=problems.COMMON)


def _health_routes(app: FastAPI, container: Container, metrics: Metrics) -> None:
    """Liveness, readiness, the operators' details and the Prometheus metrics."""
    # request.state reads scope["state"], where RequestContext puts the request id: no
    # extra middleware (bench/api.py measured one costing a quarter of a GET's CPU)
    # async: answered on the event loop even when every worker thread waits for the pool
    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "Not ready"}})
    def ready() -> Any:
        """Ready or not, nothing more: the database is reachable, migrated, row-level
        security holds and commits flow. Operators read why at ``/health/details``."""
        ok = database.health(container.database_ops)["ok"]
        return JSONResponse({"status": "ready" if ok else "not_ready"},
                            status_code=200 if ok else 503)

    @app.get("/health/details", tags=["health"],
             responses={503: {"description": "Not ready"}, **problems.responses(401)})
    def details(request: Request) -> Any:
        """Each readiness check with the database's version, roles and schema revision: for
        operators (``NEONPRO_OPERATOR_TOKEN`` as a bearer token, or a loopback client when
        none is set)."""
        if not _operator(request, container.settings.operator_token):
            return problems.problem(401, "unauthenticated", "unauthenticated",
                                    "health details are for operators")
        report = database.health(container.database_ops)
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics: requests, latency, pool usage, audit events sealed."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _stop_feed_on_shutdown(app: FastAPI) -> None:
    async def stop_feed() -> None:
        """The change feed's LISTEN connection (started by the first subscriber)."""
        if getattr(app.state, "feed", None) is not None:
            await app.state.feed.stop()

    app.add_event_handler("shutdown", stop_feed)


def _middleware(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """Idempotency keys, read retries, the deadline, body limit and request context."""
    idempotency.use_idempotency_keys(app)
    resilience.retry_idempotent_reads(app, settings.retry_attempts, settings.retry_base_delay_s)
    app.add_middleware(resilience.RequestDeadline, seconds=settings.request_timeout_s)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(LastResort)  # inside RequestContext: its log line has the request id
    app.add_middleware(RequestContext, metrics=metrics)


def settle_heap() -> None:
    """Before serving: collect once, then keep what is alive (modules, the app, its routes,
    models and compiled statements: about 250,000 objects) out of the cyclic garbage
    collector's full passes. Each full pass walked all of them, 90-175 ms with the GIL held,
    every few seconds under load: the GET p99 (bench/api.py, docs/performance.md). Objects
    made later are collected as before; the frozen ones are freed by reference counting."""
    gc.collect()
    gc.freeze()


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _operator(request: Request, token: SecretStr | None) -> bool:
    """The bearer token set for operators (compared in constant time), or, without one, a
    client on the loopback address (a proxy in front makes every client look local: set a
    token there)."""
    if token is None:
        return request.client is not None and request.client.host in _LOOPBACK
    given = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(given.encode(), expected.encode())
