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
replace the connections older than the failure. The engine's ``before_cursor_execute`` and
``after_cursor_execute`` listeners (tracing, statement counters) see hot statements too, with
a stand-in for the execution context SQLAlchemy does not build for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

import psycopg
from sqlalchemy import BindParameter, Column, Connection, Table, bindparam
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Processor = Callable[[Any], Any]


class _Compiled:
    __slots__ = ("_types", "binds", "constants", "defaults", "dialect", "names", "required",
                 "results", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if compiled.positiontup is not None or compiled.escaped_bind_names:
            msg = "a hot statement needs named parameters the driver takes as they are"
            raise ValueError(msg)
        required = {name for name, bind in compiled.binds.items() if bind.required}
        if any(compiled.binds[name].expanding for name in required):
            msg = "a hot statement has the same SQL on every call (no expanding IN of values)"
            raise ValueError(msg)
        # the values the statement carries (``version + 1``, an IN list of constants) are
        # rendered once, as parameters of their own; the caller gives the required ones
        state = compiled.construct_expanded_state(dict.fromkeys(required))
        self.dialect = dialect
        self.sql: str = state.statement
        self.required = frozenset(required)
        processors = dict(state.processors)  # the expanded IN lists' values
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        self.binds: dict[str, Processor] = {
            name: processors[name] for name in required if name in processors}
        # columns the statement does not set whose default is computed in Python (a new id,
        # ``'scheduled'``): SQLAlchemy's execution context computes them per call; so do we
        self.defaults: list[tuple[str, Any, Processor | None]] = []
        for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
            default = column.onupdate if column in compiled.update_prefetch else column.default
            prefetch = compiled.binds.get(column.key)
            if (prefetch is None or prefetch.required or default is None
                    or not (default.is_scalar or default.is_callable)):
                msg = f"a hot statement cannot compute the default of {column.key}"
                raise ValueError(msg)
            self.defaults.append((column.key, default, processors.get(column.key)))
        prefetched = {name for name, _, _ in self.defaults}
        constants = {k: v for k, v in state.parameters.items()
                     if k not in required and k not in prefetched}
        for name, process in processors.items():
            if name in constants:
                constants[name] = process(constants[name])
        self.constants: dict[str, Any] = constants
        # a SELECT's columns, an INSERT or UPDATE's RETURNING; none for text()
        columns: Sequence[Any] = getattr(statement, "exported_columns", ())
        self.names: tuple[str, ...] = tuple(c.key for c in columns)
        self._types = tuple(c.type.dialect_impl(dialect) for c in columns)
        self.results: tuple[tuple[int, Processor], ...] | None = None

    def result_processors(self, cursor: psycopg.Cursor[Any]) -> tuple[tuple[int, Processor], ...]:
        """The column types' result processors, for the types the server sends (known at the
        first execution; a processor may depend on them, as NUMERIC's does)."""
        results = self.results
        if results is None:
            description = cursor.description or ()
            if len(description) != len(self.names):
                msg = "a hot statement's rows do not have the columns it selects"
                raise ValueError(msg)
            results = self.results = tuple(
                (i, p) for i, (t, d) in enumerate(zip(self._types, description, strict=True))
                if (p := t.result_processor(self.dialect, d.type_code)) is not None)
        return results


class HotStatement:
    """A statement compiled once and run on the driver (see the module's docstring).

    ``rows`` returns the rows as dicts by column key (a SELECT or a RETURNING);
    ``scalar`` the first column of the first row; ``run`` the rows the statement changed.
    """

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        # per dialect: each engine (login) has its own, and one statement may serve several
        self._compiled: dict[Dialect, _Compiled] = {}

    def _for(self, connection: Connection) -> _Compiled:
        compiled = self._compiled.get(connection.dialect)
        if compiled is None:  # a race compiles twice, the same SQL
            compiled = self._compiled[connection.dialect] = _Compiled(self.statement,
                                                                      connection.dialect)
        return compiled

    def _run(self, compiled: _Compiled, connection: Connection, params: Mapping[str, Any],
             fetch: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        if not compiled.required.issubset(params):
            missing = sorted(compiled.required.difference(params))
            msg = f"a hot statement's parameters are missing: {', '.join(missing)}"
            raise ValueError(msg)
        values = {**compiled.constants, **params}
        for name, process in compiled.binds.items():
            values[name] = process(values[name])
        for name, default, maybe in compiled.defaults:
            # a callable default takes SQLAlchemy's execution context; ours take none
            # (SQLAlchemy wraps a zero-argument function to accept and ignore it)
            value = default.arg if default.is_scalar else default.arg(None)
            values[name] = value if maybe is None else maybe(value)
        driver = connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)  # noqa: S101  (the psycopg dialect)
        cursor = driver.cursor()
        sql: str = compiled.sql
        dispatch = connection.dispatch
        observed = bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)
        context = SimpleNamespace(statement=self.statement) if observed else None
        try:
            if observed:  # tracing and statement counters see hot statements too
                for listener in dispatch.before_cursor_execute:
                    changed = listener(connection, cursor, sql, values, context,
                                       False)  # noqa: FBT003  (executemany: no)
                    if isinstance(changed, tuple):  # a listener registered with retval=True
                        sql, values = changed
            cursor.execute(sql, values)
            if observed:
                for listener in dispatch.after_cursor_execute:
                    listener(connection, cursor, sql, values, context,
                             False)  # noqa: FBT003  (executemany: no)
            return fetch(cursor)
        except psycopg.Error as exc:
            # SQLAlchemy's handler: wraps, detects a disconnect, invalidates the pool
            connection._handle_dbapi_exception(  # noqa: SLF001
                exc, compiled.sql, values, cast(Any, cursor), None)
        finally:
            cursor.close()

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled = self._for(connection)
        names = compiled.names

        def fetch(cursor: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
            results = compiled.result_processors(cursor)
            out = []
            for row in cursor.fetchall():
                if results:
                    row = list(row)  # noqa: PLW2901
                    for i, process in results:
                        row[i] = process(row[i])
                out.append(dict(zip(names, row, strict=True)))
            return out

        return self._run(compiled, connection, params, fetch)  # type: ignore[no-any-return]

    def scalar(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        def fetch(cursor: psycopg.Cursor[Any]) -> Any:
            row = cursor.fetchone()
            return None if row is None else row[0]

        return self._run(self._for(connection), connection, params, fetch)

    def run(self, connection: Connection, params: Mapping[str, Any]) -> int:
        return self._run(self._for(connection), connection, params,  # type: ignore[no-any-return]
                         lambda cursor: cursor.rowcount)


def value_binds(table: Table, columns: Sequence[str]) -> dict[Column[Any], BindParameter[Any]]:
    """``columns`` of ``table`` bound as ``v_<column>`` with the column's type: the VALUES of
    an INSERT or UPDATE compiled once per set of columns (see :func:`bound_values`)."""
    return {table.c[c]: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns}


def bound_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of :func:`value_binds`' statement for ``values`` (column -> value)."""
    return {f"v_{column}": value for column, value in values.items()}
