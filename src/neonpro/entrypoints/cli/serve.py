"""``neonpro serve``: migrate, check health, optionally load demo data, serve the HTTP API."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from neonpro.devtools.demo_sizes import RUN_DEMO_MONTHS, RUN_DEMO_PATIENTS
from neonpro.entrypoints.cli._common import container, fail, out
from neonpro.entrypoints.cli.demo import demo_access, print_demo_access

if TYPE_CHECKING:
    from neonpro.bootstrap import Container


def _demo(box: Container, host: str, port: int) -> None:
    """Load demo data into an empty database and print a walkthrough token."""
    from neonpro.config import Environment
    from neonpro.devtools.demo import seed_demo
    from neonpro.domain.actors import SystemActors
    from neonpro.services import clinics, noshow

    if not clinics.list_clinics(box.service_uow(SystemActors.CLI)):
        out.print(f"loading demo data ({RUN_DEMO_PATIENTS} synthetic patients, "
                  f"{RUN_DEMO_MONTHS} months of history: a minute or so)...", highlight=False)
        result = seed_demo(box, patients=RUN_DEMO_PATIENTS, months=RUN_DEMO_MONTHS)
        for clinic in result.clinics:  # no-show scores for the coming two weeks
            noshow.score_upcoming(box.uow(clinic, SystemActors.CLI), days=14)
        box.seal_audit()
    if box.settings.environment is Environment.PRODUCTION:
        return
    access = demo_access(box)
    if access is None:
        out.print("the database has clinics of its own and no demo clinic: get a token with "
                  "`neonpro token --clinic ID --role admin`", highlight=False)
        return
    print_demo_access(*access)
    out.print(f"try: curl -H 'Authorization: Bearer <token>' http://{host}:{port}/patients",
              highlight=False)
    out.print("again later: `neonpro demo info` (a fresh token), `neonpro clinics list`",
              highlight=False)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations before serving.")
    ] = True,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load demo data if the database has no clinic.")
    ] = False,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Worker processes (default: one per core).")] = None,
) -> None:
    """Start the API (on the embedded database unless NEONPRO_DATABASE_URL is set)."""
    from neonpro.services import database

    with container() as box:
        db = box.database
        if migrate_first:
            database.upgrade(box.database_ops)
        report = database.health(box.database_ops)
        if not report["ok"]:
            hold = report["checks"].get("restore_hold", {})
            if hold.get("reason"):  # a restore that could not prove its erasures re-applied
                fail(f"the database is closed to the application: {hold['reason']}", 4)
            failed = [k for k, v in report["checks"].items() if not v["ok"]]
            fail(f"database unhealthy: {', '.join(failed)}")
        where = "embedded PostgreSQL" if db.embedded is not None else "configured database"
        out.print(f"[green]healthy[/]: {where}, schema at {report['checks']['migrations']['head']}")
        if demo:
            _demo(box, host, port)
        count = workers or os.cpu_count() or 1
        box.start_sealer()  # once per server, here: workers only answer requests
        box.start_checkpointer()
        out.print(f"API on http://{host}:{port}  ({count} worker process"
                  f"{'es' if count > 1 else ''}; docs http://{host}:{port}/docs, "
                  "readiness /health/ready, metrics /metrics)", highlight=False)
        _run(box, host, port, count)


def _run(box: Container, host: str, port: int, count: int) -> None:
    """uvicorn, on uvloop and httptools where installed (its "auto"). log_config=None:
    uvicorn's lines go through our handler, so they are redacted too; a graceful shutdown
    waits 5 s at most (open change-feed streams would hold it forever)."""
    import uvicorn

    from neonpro.entrypoints.api.app import create_app, settle_heap

    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning",
                               "log_config": None, "timeout_graceful_shutdown": 5}
    if count == 1:
        app = create_app(box)
        settle_heap()
        uvicorn.run(app, **options)
        return
    # the workers reach the database this process resolved (the embedded server it
    # started, say) and start none of their own
    os.environ["NEONPRO_DATABASE_URL"] = box.database.owner_url
    uvicorn.run("neonpro.entrypoints.api.worker:app", factory=True, workers=count, **options)
