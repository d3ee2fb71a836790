"""FastAPI application factory: built from a container, never at import time."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from neonpro import __version__
from neonpro.adapters.db.health import check_health
from neonpro.bootstrap import Container


def create_app(container: Container) -> FastAPI:
    """The API over ``container``'s services; the caller owns the container's lifetime."""
    app = FastAPI(title="neonpro", version=__version__)

    @app.get("/health/live", tags=["health"])
    def live() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "Not ready"}})
    def ready() -> Any:
        """The database is reachable, migrated, and row-level security holds."""
        report = check_health(container.database)
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    return app
