"""Typed pagination and sorting: offset pages and keyset (cursor) pages."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

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


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, expected: int) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor`; a bad cursor is a 4xx, not a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("cursor", "is not a cursor this API issued") from exc
    if not isinstance(values, list) or len(values) != expected:
        raise ValidationFailed("cursor", "is not a cursor this API issued")
    return values
