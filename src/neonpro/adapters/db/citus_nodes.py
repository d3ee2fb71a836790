"""The nodes of a Citus cluster as one database sees them, and databases made on all of them.

Citus keeps its metadata (``pg_dist_node``) per database: a new database is a Citus
database only once it exists on every node, has the extension on every node, and its
coordinator has registered the workers. ``db check`` needs one to compare a distributed live
database with what the migrations build on Citus (``schema_check``); the local development
cluster (``neonpro.devtools.citus``) makes its databases the same way.

Every node is reached with the given URL's login and password at the node's host and port
as the coordinator registered it (Citus itself connects between nodes that way); creating
the extension needs a superuser.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from sqlalchemy import make_url

MAINTENANCE = "postgres"  # every node's maintenance database: where databases are made
HAS_CITUS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
_WORKERS = ("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid > 0 "
            "AND noderole = 'primary' AND isactive ORDER BY groupid")


@dataclass(frozen=True)
class Nodes:
    """Where a Citus database lives: the coordinator (as the URL reaches it) and workers."""

    coordinator: tuple[str, int]
    workers: tuple[tuple[str, int], ...]

    @property
    def all(self) -> tuple[tuple[str, int], ...]:
        return (self.coordinator, *self.workers)


def _plain(url: str) -> str:
    """A libpq URL (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def node_url(url: str, node: tuple[str, int], database: str | None = None) -> str:
    """``url``'s login at ``node`` (and ``database``, the URL's own when not given)."""
    parsed = make_url(_plain(url)).set(host=node[0], port=node[1])
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def nodes_of(url: str) -> Nodes | None:
    """The nodes of the Citus database at ``url``; None when it has no Citus extension."""
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        row = conn.execute(HAS_CITUS).fetchone()
        if row is None or not row[0]:
            return None
        workers = tuple((str(h), int(p)) for h, p in conn.execute(_WORKERS).fetchall())
    parsed = make_url(url)
    return Nodes((parsed.host or "127.0.0.1", parsed.port or 5432), workers)


def is_superuser(url: str) -> bool:
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                           ).fetchone()
    return bool(row and row[0])


def create_database(url: str, nodes: Nodes, name: str) -> str:
    """Database ``name`` on every node of ``nodes`` (made where missing), with the
    extension, the coordinator and the workers registered; returns the coordinator's URL."""
    for node in nodes.all:
        with psycopg.connect(node_url(url, node, MAINTENANCE), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(node_url(url, node, name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
    target = node_url(url, nodes.coordinator, name)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", nodes.coordinator)
        for host, port in nodes.workers:
            conn.execute("SELECT citus_add_node(%s, %s)", (host, port))
    return target


def drop_database(url: str, nodes: Nodes, name: str) -> None:
    """Drop ``name`` from every node (the workers first)."""
    failed: list[psycopg.Error] = []
    for node in reversed(nodes.all):  # every node tried, whichever fails
        try:
            with psycopg.connect(node_url(url, node, MAINTENANCE), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error as exc:
            failed.append(exc)
    if failed:
        raise failed[0]
