"""A cancellation is never lost, also when it arrives just as a database call completes.

`asyncio.wait_for` on Python 3.11 returns the call's result instead of raising when the two meet
(python/cpython#86296): a turn's control loop survived its cancel and the turn waited for it forever
(turns that never ended under `make load`; a tool turn hung in the worker tests).
"""

from __future__ import annotations

import asyncio

import pytest

from courier_worker.persistence import within

pytestmark = pytest.mark.anyio


async def test_a_cancellation_that_meets_the_result_is_not_swallowed() -> None:
    call = asyncio.get_running_loop().create_future()
    caller = asyncio.create_task(within(10, call))
    await asyncio.sleep(0)  # the caller now waits on the call

    call.set_result("row")  # the database answers…
    caller.cancel()  # …as the turn ends and cancels its control loop

    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_a_call_past_its_bound_is_a_timeout() -> None:
    never = asyncio.get_running_loop().create_future()

    with pytest.raises(TimeoutError):
        await within(0.01, never)
