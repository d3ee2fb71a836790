"""What every SQL repository shares: its unit of work's connection and error translation."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, CursorResult, Executable
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.db.errors import describe, mark_origin, repository_origin, translate
from neonpro.domain.errors import DomainError, Forbidden

if TYPE_CHECKING:
    from neonpro.adapters.db.hot import HotStatement
    from neonpro.adapters.db.uow import SqlUnitOfWork

log = structlog.get_logger(__name__)


class SqlRepository:
    """Base: executes on the unit of work's connection; never commits."""

    __slots__ = ("_uow",)

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    @property
    def clinic_id(self) -> uuid.UUID:
        clinic = self._uow.clinic_id
        if clinic is None:
            raise Forbidden("this operation needs a clinic: open a tenant unit of work")
        return clinic

    def _execute(self, statement: Executable, params: Any = None) -> CursorResult[Any]:
        try:
            return self._uow.connection.execute(statement, params)
        except DBAPIError as exc:
            error = self._failed(exc, sys._getframe(1))  # noqa: SLF001
            if error is None:
                raise
            # `from None`: the driver's exception text carries the offending values
            raise error from None

    def _fetch(self, statement: HotStatement, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows of a hot statement (hot.py), errors handled as :meth:`_execute`'s."""
        return self._hot(statement.rows, params)  # type: ignore[no-any-return]

    def _run(self, statement: HotStatement, params: Mapping[str, Any]) -> int:
        """Run a hot statement (hot.py): the rows it changed; errors as :meth:`_execute`'s."""
        return self._hot(statement.run, params)  # type: ignore[no-any-return]

    def _hot(self, method: Callable[[Connection, Mapping[str, Any]], Any],
             params: Mapping[str, Any]) -> Any:
        try:
            return method(self._uow.connection, params)
        except DBAPIError as exc:
            # the origin is the repository method that called _fetch or _run
            error = self._failed(exc, sys._getframe(2))  # noqa: SLF001
            if error is None:
                raise
            raise error from None

    def _failed(self, exc: DBAPIError, caller: FrameType) -> DomainError | None:
        """Mark where a statement failed, log it without its values, and translate it."""
        mark_origin(exc, repository_origin(self, caller))
        error = translate(exc)
        actor = self._uow.actor
        log.warning(
            "db_error",
            error=error.code if error else "untranslated",
            **describe(exc),
            clinic_id=str(self._uow.clinic_id) if self._uow.clinic_id else None,
            actor_id=str(actor.id),
            request_id=actor.request_id,
        )
        return error
