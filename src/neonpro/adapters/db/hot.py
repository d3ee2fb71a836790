"""Hot statements: compiled once, run on the driver's cursor in the caller's transaction.

Every request runs a handful of the same statements (the tenant context, the session check,
the patient SELECT, the audit INSERT, the commit token). Through ``Connection.execute`` each
costs SQLAlchemy's per-call work on top of the driver's: the cache key, the compiled-cache
lookup, the execution context, the result's metadata, about 65 us of CPU per statement on
this machine against 49 us for the driver alone (docs/performance.md). A
:class:`HotStatement` is the same SQLAlchemy construct, compiled once for the connection's
dialect, and run on the psycopg cursor of the connection SQLAlchemy checked out, inside the
transaction SQLAlchemy began (its COMMIT, rollback and pool return are unchanged). Values are
still bound by the server (psycopg's server-side binding), converted by the column types'
own bind and result processors.

A driver error goes through SQLAlchemy's own handler, so callers see what
``Connection.execute`` would have raised: a ``DBAPIError`` (translated and logged by the
repository), the connection invalidated when the server dropped it, and the pool told to
replace the connections older than the failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.elements import ClauseElement

Processor = Callable[[Any], Any]


class _Compiled:
    __slots__ = ("binds", "dialect", "names", "results", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is not None or getattr(compiled, "escaped_bind_names", None):
            msg = "a hot statement needs named parameters the driver takes as they are"
            raise ValueError(msg)
        if any(b.expanding or b.literal_execute for b in compiled.binds.values()):
            msg = "a hot statement has the same SQL on every call (no expanding IN)"
            raise ValueError(msg)
        self.dialect = dialect
        self.sql: str = compiled.string
        self.binds: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.binds[name] = process
        columns: Sequence[Any] = getattr(statement, "selected_columns", ())
        if not columns:  # INSERT ... RETURNING
            columns = getattr(statement, "_returning", ())
        self.names: tuple[str, ...] = tuple(c.key for c in columns)
        self.results: tuple[tuple[int, Processor], ...] = tuple(
            (i, p) for i, c in enumerate(columns)
            if (p := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        )


class HotStatement:
    """A statement compiled once and run on the driver (see the module's docstring).

    ``rows`` returns the rows as dicts by column key (a SELECT or a RETURNING);
    ``scalar`` the first column of the first row; ``run`` the rows the statement changed.
    """

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: _Compiled | None = None

    def _for(self, connection: Connection) -> _Compiled:
        compiled = self._compiled
        if compiled is None or compiled.dialect is not connection.dialect:
            # one dialect per engine; a race compiles twice, the same SQL
            compiled = self._compiled = _Compiled(self.statement, connection.dialect)
        return compiled

    def _run(self, connection: Connection, params: Mapping[str, Any],
             fetch: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        compiled = self._for(connection)
        values = dict(params)
        for name, process in compiled.binds.items():
            if name in values:
                values[name] = process(values[name])
        driver = connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)  # noqa: S101  (the psycopg dialect)
        cursor = driver.cursor()
        try:
            cursor.execute(compiled.sql, values)
            return fetch(cursor)
        except psycopg.Error as exc:
            # SQLAlchemy's handler: wraps, detects a disconnect, invalidates the pool
            connection._handle_dbapi_exception(  # noqa: SLF001
                exc, compiled.sql, values, cursor, None)
        finally:
            cursor.close()

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled = self._for(connection)
        names, results = compiled.names, compiled.results

        def fetch(cursor: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
            out = []
            for row in cursor.fetchall():
                if results:
                    row = list(row)  # noqa: PLW2901
                    for i, process in results:
                        row[i] = process(row[i])
                out.append(dict(zip(names, row, strict=True)))
            return out

        return self._run(connection, params, fetch)  # type: ignore[no-any-return]

    def scalar(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        def fetch(cursor: psycopg.Cursor[Any]) -> Any:
            row = cursor.fetchone()
            return None if row is None else row[0]

        return self._run(connection, params, fetch)

    def run(self, connection: Connection, params: Mapping[str, Any]) -> int:
        return self._run(connection, params, lambda cursor: cursor.rowcount)  # type: ignore[no-any-return]
