"""The DPO console: server-rendered pages under ``/console`` for the DPO and the admin
(docs/console.md). Pages parse a form, call the services and render a template: no SQL."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from neonpro.entrypoints.console import audit, consents, home, incidents, report, requests
from neonpro.entrypoints.console.verification import ChainStatus

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """The console's routes and assets on ``app``."""
    app.state.console_chain = ChainStatus()
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    for router in (home.router, requests.router, incidents.router, audit.router,
                   consents.router, report.router):
        app.include_router(router)
