"""Typed pagination and sorting: offset pages and keyset (cursor) pages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from neonpro.domain.errors import ValidationFailed

T = TypeVar("T")
MAX_PAGE_SIZE = 200


class Direction(StrEnum):
    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``cursor`` selects keyset mode; otherwise ``offset`` is used."""

    limit: int = 50
    offset: int = 0
    cursor: str | None = None
    with_total: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise ValidationFailed("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        if self.offset < 0:
            raise ValidationFailed("offset", "must not be negative")
        if self.cursor is not None and self.offset:
            raise ValidationFailed("cursor", "use either a cursor or an offset, not both")

    @property
    def keyset(self) -> bool:
        return self.cursor is not None


FIRST_KEYSET_PAGE = ""  # pass as cursor to ask for the first page in keyset mode


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int | None
    next_cursor: str | None
    limit: int
    offset: int


class CursorSealer(Protocol):
    """Seals keyset cursors: opaque, tamper-evident and bound to a scope (the clinic and the
    query), so a cursor reveals no value (a patient's name was one) and works nowhere else."""

    def seal(self, values: list[Any], scope: str) -> str: ...

    def open(self, cursor: str, scope: str, expected: int) -> list[Any]: ...


def query_scope(kind: str, clinic_id: object, *parts: object) -> str:
    """The scope a cursor is bound to: what is listed, in which clinic, how and filtered how."""
    return "\x1f".join([kind, str(clinic_id), *(repr(p) for p in parts)])


def check_cursor_values(values: object, expected: int) -> list[Any]:
    """The values of an opened cursor, or the same 4xx as for any cursor this API never issued."""
    if not isinstance(values, list) or len(values) != expected:
        raise ValidationFailed("cursor", "is not a cursor this API issued for this query")
    return values
