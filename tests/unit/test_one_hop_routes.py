"""Every API route makes one hand-off to the thread pool (entrypoints/api/routing.py), and
the session check it defers cannot be skipped: each route that takes a token runs
``confirm_session`` before its endpoint, in that hand-off."""

from __future__ import annotations

import inspect
from typing import Any

import anyio
from fastapi import Request
from fastapi.routing import APIRoute

from neonpro.bootstrap import Container
from neonpro.entrypoints.api import routing
from neonpro.entrypoints.api.app import create_app


def _routes() -> list[APIRoute]:
    app = create_app(Container(database_url="postgresql://nobody@127.0.0.1:1/none"))
    return [r for r in app.routes if isinstance(r, APIRoute)]


def _sync_calls(route: APIRoute) -> list[str]:
    """The plain-``def`` callables FastAPI would hand to the thread pool for ``route``."""
    found = []
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        call: Any = dependant.call
        if call is not None and not (dependant.is_coroutine_callable
                                     or dependant.is_async_gen_callable):
            found.append(getattr(call, "__qualname__", repr(call)))
        stack.extend(dependant.dependencies)
    return found


# pages, not API operations: the console's endpoints are async and make their one hand-off
# themselves (entrypoints/console/session.py: the session check, then the handler); /docs
# does no I/O
PAGES = ("/console", "/docs")


def test_every_api_route_is_one_hop_and_runs_no_sync_dependency() -> None:
    routes = [r for r in _routes() if not r.path.startswith(("/health", *PAGES))
              and r.path != "/metrics"]
    assert routes
    assert [r.path for r in routes if not isinstance(r, routing.OneHopRoute)] == []
    assert {r.path: calls for r in routes if (calls := _sync_calls(r))} == {}


def test_every_console_page_is_async_and_runs_no_sync_dependency() -> None:
    pages = [r for r in _routes() if r.path.startswith(PAGES)]
    assert len(pages) > 10
    assert {r.path: calls for r in pages if (calls := _sync_calls(r))} == {}


def test_the_wrapper_checks_the_session_before_a_sync_endpoint(monkeypatch: Any) -> None:
    order: list[str] = []
    monkeypatch.setattr(routing, "confirm_session", lambda _request: order.append("session"))

    def endpoint(x: int) -> int:
        order.append("endpoint")
        return x

    wrapped = routing.one_hop(endpoint)
    assert inspect.iscoroutinefunction(wrapped)
    assert routing.one_hop(wrapped) is wrapped  # never wrapped twice
    assert list(inspect.signature(wrapped).parameters) == ["x", routing._REQUEST]
    async def call() -> Any:
        return await wrapped(x=3, **{routing._REQUEST: object()})

    assert anyio.run(call) == 3
    assert order == ["session", "endpoint"]


def test_an_endpoint_with_its_own_request_gets_it(monkeypatch: Any) -> None:
    """FastAPI fills one Request parameter per callable: the wrapper reads the endpoint's."""
    seen: list[object] = []
    monkeypatch.setattr(routing, "confirm_session", seen.append)

    def endpoint(request: Request, x: int) -> tuple[object, int]:
        return request, x

    wrapped = routing.one_hop(endpoint)
    assert list(inspect.signature(wrapped).parameters) == ["request", "x"]
    marker = object()

    async def call() -> Any:
        return await wrapped(request=marker, x=1)

    assert anyio.run(call) == (marker, 1)
    assert seen == [marker]
