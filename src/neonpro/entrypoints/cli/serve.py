"""``neonpro serve``: migrate, check health, and serve the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from neonpro.adapters.db import migrate
from neonpro.adapters.db.health import check_health
from neonpro.entrypoints.api.app import create_app
from neonpro.entrypoints.cli._common import container, fail, out


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations before serving.")
    ] = True,
) -> None:
    """Start the API (on the embedded database unless NEONPRO_DATABASE_URL is set)."""
    with container() as box:
        db = box.database
        if migrate_first:
            migrate.upgrade(db.owner_url, db.roles)
        report = check_health(db)
        if not report["ok"]:
            failed = [k for k, v in report["checks"].items() if not v["ok"]]
            fail(f"database unhealthy: {', '.join(failed)}")
        where = "embedded PostgreSQL" if db.embedded is not None else "configured database"
        out.print(f"[green]healthy[/]: {where}, schema at {report['checks']['migrations']['head']}")
        out.print(f"API on http://{host}:{port}  (liveness /health/live, readiness /health/ready)")
        box.start_sealer()
        uvicorn.run(create_app(box), host=host, port=port, log_level="warning")
