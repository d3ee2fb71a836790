"""Serving-path pieces measured in docs/performance.md (issue 18): the deadline's watch
wakes at once on the task's end or the answer's start, and times out otherwise; the heap
is frozen before serving."""

from __future__ import annotations

import asyncio
import gc

from neonpro.entrypoints.api.app import settle_heap
from neonpro.entrypoints.api.resilience import _Watch


def test_the_watch_wakes_when_the_request_ends() -> None:
    async def scenario() -> bool:
        watch = _Watch()
        task = asyncio.ensure_future(asyncio.sleep(0.01))
        task.add_done_callback(watch.wake)
        # a watch that missed the wake-up would wait its 30 s and fail the outer timeout
        return await asyncio.wait_for(watch.answered(task, 30), timeout=5)

    assert asyncio.run(scenario()) is True


def test_the_watch_wakes_when_the_answer_starts_and_the_request_goes_on() -> None:
    async def scenario() -> tuple[bool, bool]:
        watch = _Watch()
        task = asyncio.ensure_future(asyncio.sleep(10))
        task.add_done_callback(watch.wake)
        asyncio.get_running_loop().call_later(0.01, watch.start)
        answered = await asyncio.wait_for(watch.answered(task, 30), timeout=5)
        still_running = not task.done()
        task.cancel()
        return answered, still_running

    assert asyncio.run(scenario()) == (True, True)


def test_the_watch_says_no_at_the_deadline() -> None:
    async def scenario() -> bool:
        watch = _Watch()
        task = asyncio.ensure_future(asyncio.sleep(10))
        task.add_done_callback(watch.wake)
        answered = await watch.answered(task, 0.05)
        task.cancel()
        return answered

    assert asyncio.run(scenario()) is False


def test_the_heap_is_frozen_before_serving() -> None:
    before = gc.get_freeze_count()
    try:
        settle_heap()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
