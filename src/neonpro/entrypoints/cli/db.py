"""``neonpro db``: schema management and the health check."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from neonpro.entrypoints.cli._common import container, fail, out, print_json, typer_app

app = typer_app(help="Manage the database schema and check its health.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
def upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from neonpro.services import database as svc

    with container() as box:
        out.print(f"at {', '.join(svc.upgrade(box.database_ops, revision)) or 'base'}")


@app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")]) -> None:
    """Revert migrations down to REVISION. Roles are never dropped (they are cluster-wide)."""
    from neonpro.services import database as svc

    with container() as box:
        out.print(f"at {', '.join(svc.downgrade(box.database_ops, revision)) or 'base'}")


@app.command()
def current(as_json: JsonFlag = False) -> None:
    """Show the database's revision and the code's head."""
    from neonpro.services import database as svc

    with container() as box:
        revs = svc.revisions(box.database_ops)
    data = {"current": list(revs.current), "head": revs.head, "at_head": revs.at_head}
    if as_json:
        print_json(data)
    else:
        out.print(f"current: {', '.join(revs.current) or 'base'}  head: {revs.head}"
                  f"{'' if revs.at_head else '  (not at head)'}")


@app.command()
def history() -> None:
    """List every revision from base to head."""
    from neonpro.bootstrap import Container
    from neonpro.services import database as svc

    table = Table("revision", "down revision", "message")
    for rev, down, message in svc.history(Container().database_ops):
        table.add_row(rev, down or "base", message.splitlines()[0] if message else "")
    out.print(table)


@app.command()
def check(
    live: Annotated[bool, typer.Option(
        "--live/--no-live",
        help="Also compare the configured (live) database with the migrations.")] = True,
) -> None:
    """Fail (exit 1), naming each difference, when the models, the migrations and the live
    database disagree.

    Compares tables (and their RLS enabled/forced flags), columns, constraints, indexes,
    policies, triggers (and whether they are enabled), functions and grants of a database
    built by the migrations with one built from the models, and with the configured
    database (when it is migrated). One line per difference, naming the object and what
    differs, never a value. Needs permission to create scratch databases on the server.
    """
    from neonpro.services import database as svc

    with container() as box:
        report, live_report = svc.drift(box.database_ops, live=live)
    lines = report.lines()
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if live_report is not None:
        for line in live_report.differences:
            out.print(f"! live database: {line}", highlight=False, markup=False,
                      soft_wrap=True)
    problems = []
    if not report.clean:
        problems.append(f"{len(lines)} difference(s) between models and migrations")
    if live_report is not None and not live_report.clean:
        problems.append(f"{len(live_report.differences)} difference(s) between the live "
                        "database and the migrations")
    if problems:
        fail(f"schema drift: {'; '.join(problems)}")
    out.print("no drift: migrations at head match the models")
    if live_report is None:
        return
    if live_report.migrated:
        out.print("no drift: the live database matches the migrations")
    else:
        out.print("the live database is not migrated: not compared")


@app.command()
def health(
    as_json: JsonFlag = True,
    drift: Annotated[bool, typer.Option(
        "--drift/--no-drift",
        help="Compare the live schema with the migrations (a scratch database).")] = True,
) -> None:
    """Check connectivity, latency, migrations, RLS, the tenant role, that a write commits
    in time and that nobody changed the schema by hand (drift); exit 1 on failure."""
    from neonpro.services import database as svc

    with container() as box:
        report = svc.health(box.database_ops, drift=drift)
    if as_json:
        print_json(report)
    else:
        for name, result in report["checks"].items():
            out.print(f"{name}: {'ok' if result['ok'] else 'FAIL'}")
            for line in result.get("differences", []):
                out.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def prune(as_json: JsonFlag = False) -> None:
    """Delete commit tokens older than ten minutes, expired idempotency keys and sign-in
    sessions and counters past their use (the API does it every minute; a database written
    only by the CLI needs it now and then)."""
    from neonpro.services import database as svc

    with container() as box:
        pruned = svc.prune(box.database_ops)
    if as_json:
        print_json(vars(pruned))
    else:
        out.print(f"pruned {pruned.commit_tokens} commit token(s), "
                  f"{pruned.idempotency_keys} expired idempotency key(s) and "
                  f"{pruned.sign_in} sign-in session(s) and counter(s)"
                  + (f"; {pruned.feed_outbox} feed event(s) no relay took (Citus)"
                     if pruned.feed_outbox else ""))


@app.command()
def distribute() -> None:
    """On a Citus coordinator, distribute a database that already holds data (restored from
    one server, at the migrations' head): tables sharded by clinic, rows copied to the
    workers. Run it with the API stopped: three transactions, and between them the shards
    run the single-server functions; run it again if one fails (docs/scaling.md)."""
    from neonpro.domain.operations import CannotDistribute
    from neonpro.services import database as svc

    with container() as box:
        try:
            done = svc.distribute(box.database_ops)
        except CannotDistribute as exc:
            fail(str(exc))
    out.print(f"distributed: {done.tables} table(s) made distributed or reference tables, "
              f"{done.workers} worker(s)")
