"""Every route answers with one hand-off to the thread pool (docs/performance.md).

FastAPI runs each plain-``def`` dependency, a plain-``def`` endpoint and the validation of
that endpoint's answer in the thread pool, one hand-off each: seven for a GET, about a
third of the server's CPU per request under load. Here the dependencies that do no I/O are
``async`` (``deps.py``) and :class:`OneHopRoute` wraps a plain-``def`` endpoint in an
``async`` one that makes a single hand-off, in which the caller's session is checked (the
database statement ``principal`` deferred) before the endpoint runs; the answer is then
validated on the event loop.

The session check is never skipped: ``deps.principal`` marks the request, and the route's
hand-off (or, for an ``async`` endpoint, a hand-off of its own) runs
:func:`deps.confirm_session` before the endpoint's first line.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.utils import get_typed_signature
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from neonpro.entrypoints.api.deps import confirm_session, session_unchecked

_REQUEST = "neonpro_route_request_"
_WRAPPED = "__neonpro_one_hop__"


def _request_parameter(endpoint: Callable[..., Any]) -> str | None:
    """The name of ``endpoint``'s own ``Request`` parameter, if it has one (FastAPI fills
    one such parameter per callable: the wrapper then reads that one)."""
    for parameter in get_typed_signature(endpoint).parameters.values():
        if isinstance(parameter.annotation, type) and issubclass(parameter.annotation,
                                                                 Request):
            return parameter.name
    return None


def _signature_with_request(endpoint: Callable[..., Any]) -> inspect.Signature:
    signature = inspect.signature(endpoint)
    extra = inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    return signature.replace(parameters=[*signature.parameters.values(), extra])


def _checked_call(request: Request, endpoint: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    confirm_session(request)
    return endpoint(**kwargs)


def one_hop(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` as an ``async`` callable: a plain ``def`` runs in one hand-off after the
    session check; an ``async`` one awaits the session check (if the request has one
    pending) first."""
    if getattr(endpoint, _WRAPPED, False):
        return endpoint
    own = _request_parameter(endpoint)

    def request_of(kwargs: dict[str, Any]) -> Request:
        found: Request = kwargs[own] if own is not None else kwargs.pop(_REQUEST)
        return found

    if inspect.iscoroutinefunction(endpoint):
        @functools.wraps(endpoint)
        async def run_async(**kwargs: Any) -> Any:
            request = request_of(kwargs)
            if session_unchecked(request):
                await run_in_threadpool(confirm_session, request)
            return await endpoint(**kwargs)
        wrapper: Callable[..., Any] = run_async
    else:
        @functools.wraps(endpoint)
        async def run_sync(**kwargs: Any) -> Any:
            request = request_of(kwargs)
            return await run_in_threadpool(_checked_call, request, endpoint, kwargs)
        wrapper = run_sync
    if own is None:
        wrapper.__signature__ = _signature_with_request(endpoint)  # type: ignore[attr-defined]
    setattr(wrapper, _WRAPPED, True)
    return wrapper


class OneHopRoute(APIRoute):
    """An API route whose endpoint makes one thread-pool hand-off (see the module)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, one_hop(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """A request FastAPI refuses before the endpoint (its parameters or body invalid)
        is still checked for its session first: a token signed out gets its 401, never a
        422 that would tell it the request was otherwise understood."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                if session_unchecked(request):
                    await run_in_threadpool(confirm_session, request)
                raise

        return handle
