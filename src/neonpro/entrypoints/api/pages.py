"""Pagination parameters and page responses shared by list endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from neonpro.domain.paging import MAX_PAGE_SIZE, Page, PageRequest

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int | None
    next_cursor: str | None
    limit: int
    offset: int


async def page_request(  # async: no I/O, no thread-pool hand-off
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: Annotated[str | None, Query(max_length=500,
                                        description="'' for the first keyset page")] = None,
    with_total: bool = True,
) -> PageRequest:
    return PageRequest(limit=limit, offset=0 if cursor is not None else offset, cursor=cursor,
                       with_total=with_total)


def to_page(page: Page[Any], items: list[T]) -> PageOut[T]:
    return PageOut[T](items=items, total=page.total, next_cursor=page.next_cursor,
                      limit=page.limit, offset=page.offset)
