"""The DPO console: server-rendered pages under ``/console`` for the DPO and the admin
(docs/console.md). Pages parse a form, call the services and render a template: no SQL."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from neonpro.entrypoints.console import (
    audit,
    consents,
    home,
    incidents,
    patients,
    report,
    requests,
)
from neonpro.entrypoints.console.session import unknown
from neonpro.entrypoints.console.verification import ChainStatus

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """The console's routes and assets on ``app``."""
    app.state.console_chain = ChainStatus()
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    for router in (home.router, requests.router, incidents.router, audit.router,
                   consents.router, patients.router, report.router):
        app.include_router(router)
    # last: any other address under /console is the console's own 404 page (a stranger is
    # sent to sign in first), not the API's JSON
    app.add_api_route("/console/{rest:path}", unknown, include_in_schema=False,
                      methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
